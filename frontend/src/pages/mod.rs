//! Top-level pages; each is one screen of the app.

pub mod home;
