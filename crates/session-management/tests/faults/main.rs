//! Faults for real: Redis and PostgreSQL cut, black-holed or restarted mid-operation through a TCP
//! proxy, against the tiered store. Each test has its own database and Redis key prefix.

#[path = "../support/fault_proxy.rs"]
mod fault_proxy;
#[path = "../support/redis_prefix.rs"]
mod redis_prefix;
#[path = "../support/test_db.rs"]
mod test_db;

mod at_rest;
mod deployment;
mod model;
mod postgres_outage;
mod redis_outage;
