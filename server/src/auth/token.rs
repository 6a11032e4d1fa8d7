//! placeholder replaced by the token helper
