//! Users: create, get, find by email, list, update, delete.

use session_management::{ConflictKind, CreateUserData, Error, UpdateUserData, UserId};

use crate::harness::{Harness, app, metadata, ttl};

pub async fn user_is_created_and_found_by_id_and_normalised_email(h: &Harness) {
    let web = app("web");
    let user = h
        .manager
        .create(
            &web,
            CreateUserData {
                email: "  Ada@Example.COM ".into(),
                name: " Ada Lovelace ".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(user.email.as_str(), "ada@example.com");
    assert_eq!(user.name.as_str(), "Ada Lovelace");
    assert_eq!(user.app, web);
    assert_eq!(user.created_at, user.updated_at);

    assert_eq!(h.manager.get(&web, user.id).await.unwrap(), user);
    let found = h
        .manager
        .find_by_email(&web, "ADA@example.com")
        .await
        .unwrap();
    assert_eq!(found, Some(user));
    assert_eq!(
        h.manager
            .find_by_email(&web, "bob@example.com")
            .await
            .unwrap(),
        None
    );
}

pub async fn duplicate_email_conflicts_within_an_app_but_not_across_apps(h: &Harness) {
    let (web, admin) = (app("web"), app("admin"));
    let first = h.user(&web, "ada@example.com").await;
    let err = h
        .manager
        .create(
            &web,
            CreateUserData {
                email: "ADA@example.com".into(),
                name: "Other".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ConflictKind::DuplicateEmail)),
        "{err:?}"
    );

    let in_admin = h.user(&admin, "ada@example.com").await;
    assert_ne!(in_admin.id, first.id);
    assert_eq!(
        h.manager
            .find_by_email(&web, "ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    assert_eq!(
        h.manager
            .find_by_email(&admin, "ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        in_admin.id
    );
}

pub async fn users_are_listed_in_cursor_pages_per_app(h: &Harness) {
    let (web, admin) = (app("web"), app("admin"));
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(h.user(&web, &format!("user{i}@example.com")).await.id);
    }
    h.user(&admin, "other@example.com").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h.manager.list(&web, cursor.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|u| u.id));
        pages += 1;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, created,
        "every web user once, in creation order, no admin user"
    );

    let all = h.manager.list(&web, None, 1000).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.next_cursor, None);
    assert!(
        h.manager
            .list(&app("empty"), None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn update_changes_email_and_name_and_keeps_emails_unique(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let bob = h.user(&web, "bob@example.com").await;
    h.advance(1.0);

    let updated = h
        .manager
        .update(
            &web,
            ada.id,
            UpdateUserData {
                email: Some("Ada@New.example".into()),
                name: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.email.as_str(), "ada@new.example");
    assert_eq!(updated.name, ada.name);
    assert!(updated.updated_at > ada.updated_at);
    assert_eq!(h.manager.get(&web, ada.id).await.unwrap(), updated);
    assert_eq!(
        h.manager
            .find_by_email(&web, "ada@example.com")
            .await
            .unwrap(),
        None
    );

    let renamed = h
        .manager
        .update(
            &web,
            ada.id,
            UpdateUserData {
                email: None,
                name: Some("Countess".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Countess");

    let err = h
        .manager
        .update(
            &web,
            bob.id,
            UpdateUserData {
                email: Some("ada@new.example".into()),
                name: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ConflictKind::DuplicateEmail)),
        "{err:?}"
    );
    assert_eq!(
        h.manager.get(&web, bob.id).await.unwrap(),
        bob,
        "a rejected update changes nothing"
    );
    // The old email is free again.
    h.user(&web, "ada@example.com").await;
}

pub async fn deleting_a_user_revokes_all_their_sessions(h: &Harness) {
    let web = app("web");
    let ada = h.user(&web, "ada@example.com").await;
    let bob = h.user(&web, "bob@example.com").await;
    let (t1, _) = h.session(&web, &ada, 3600).await;
    let (t2, _) = h.session(&web, &ada, 3600).await;
    let (bob_token, _) = h.session(&web, &bob, 3600).await;

    h.manager.delete(&web, ada.id).await.unwrap();

    assert!(h.manager.validate(&web, &t1).await.unwrap().is_none());
    assert!(h.manager.validate(&web, &t2).await.unwrap().is_none());
    assert!(
        h.manager
            .validate(&web, &bob_token)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        h.manager.get(&web, ada.id).await,
        Err(Error::NotFound { what: "user" })
    ));
    assert!(matches!(
        h.manager.delete(&web, ada.id).await,
        Err(Error::NotFound { what: "user" })
    ));
    let stats = h.stats().await;
    assert_eq!((stats[0].users, stats[0].sessions), (1, 1));
    // The email can be used again.
    h.user(&web, "ada@example.com").await;
}

pub async fn unknown_user_ids_are_not_found(h: &Harness) {
    let web = app("web");
    let ghost = UserId::new_v7();
    let not_found =
        |r: Result<(), Error>| assert!(matches!(r, Err(Error::NotFound { what: "user" })), "{r:?}");
    not_found(h.manager.get(&web, ghost).await.map(drop));
    not_found(
        h.manager
            .update(
                &web,
                ghost,
                UpdateUserData {
                    email: None,
                    name: Some("x".into()),
                },
            )
            .await
            .map(drop),
    );
    not_found(h.manager.delete(&web, ghost).await);
    not_found(
        h.manager
            .create_session(&web, ghost, metadata(), ttl(60))
            .await
            .map(drop),
    );
    not_found(h.manager.list_sessions(&web, ghost).await.map(drop));
    not_found(h.manager.revoke_all(&web, ghost).await.map(drop));
    assert!(h.stats().await.is_empty(), "nothing was written");
}
