//! The session record every implementation stores: the same shape for ours, the limit and the peer.

/// The app every session belongs to.
pub const APP: &str = "web";
/// The client IP of every session.
pub const IP: &str = "203.0.113.7";
/// A realistic browser user agent, exactly 100 characters.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.10 Safari/537.36";
/// Every session lives one hour.
pub const TTL_SECS: u64 = 3600;

#[cfg(test)]
mod tests {
    #[test]
    fn the_user_agent_is_100_characters() {
        assert_eq!(super::USER_AGENT.len(), 100);
    }
}
