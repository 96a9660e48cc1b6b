//! The people who sign in to the console with the company's identity
//! provider: their user id, name and role as of their last sign-in, kept so
//! the appliance knows whose phones are admins' (to tell them of a phone
//! that waits for approval, or one a user disowned).

use crate::clock::Timestamp;
use crate::ids::UserId;
use crate::store::{Store, StoreError, Table};
use serde::{Deserialize, Serialize};

/// What a person may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Today's whole console.
    Admin,
    /// "My phones": their own phones and what was sent to them.
    Developer,
}

impl Role {
    /// The role's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
        }
    }
}

/// A person, as of their last sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Person {
    /// Their user id (phones are paired to it).
    pub user_id: UserId,
    /// Their name, as the provider gave it.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// When they last signed in.
    pub signed_in_at: Timestamp,
}

/// The people directory (cheap to clone).
#[derive(Clone)]
pub(crate) struct People {
    store: Store,
}

impl People {
    /// A directory over `store`.
    pub(crate) fn new(store: Store) -> People {
        People { store }
    }

    /// Records a sign-in (on disk when this returns).
    pub(crate) async fn signed_in(&self, person: &Person) -> Result<(), StoreError> {
        self.store.insert(Table::People, person.user_id.as_str(), person).await
    }

    /// The user ids of the admins.
    pub(crate) fn admins(&self) -> Result<Vec<UserId>, StoreError> {
        let people: Vec<Person> = self.store.scan(Table::People)?;
        Ok(people.into_iter().filter(|p| p.role == Role::Admin).map(|p| p.user_id).collect())
    }
}
