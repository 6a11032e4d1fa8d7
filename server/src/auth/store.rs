//! The auth store (etcd `auth/store.go`, `auth/range_perm_cache.go`): whether auth is
//! enabled, the auth revision, users and roles. Plain state the raft core applies the
//! Auth requests to; every core reads a published copy (`Arc<AuthStore>`) for the checks
//! made before a request is proposed or served (reads, watches, admin calls).
//!
//! Rules, all as etcd 3.4/3.5:
//! - The revision starts at 1 and grows by one with every change of a user or role and
//!   with AuthDisable (not with AuthEnable). A request authorized at an older revision is
//!   refused with "revision of auth store is old".
//! - AuthEnable needs the user `root` holding the role `root`; `root` cannot be deleted,
//!   nor lose the `root` role, nor the `root` role be deleted, while auth is enabled.
//! - The `root` role is implicit: granting it needs no role record, and a user holding it
//!   passes every check.
//! - Permissions are merged per user over its roles into read and write interval sets; a
//!   single key is permitted if one interval holds it, a range `[key, range_end)` if the
//!   intervals meeting it cover it without a gap (`adt.IntervalTree.Contains`). A range end
//!   of `"\0"` means "to the end of the key space" (`--from-key`).
//! - Passwords are bcrypt hashes made by the receiving member off the raft core (etcd 3.5
//!   `hashedPassword`, base64 in the request); the store never hashes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use net::pb::authpb::{permission::Type as PermType, Permission, Role, User, UserAddOptions};
use net::pb::etcdserverpb::{
    AuthRoleGetResponse, AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest,
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserGetResponse,
    AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest,
};
use net::Status;
use prost::Message;

use super::AuthInfo;
use crate::errors;

/// The user AuthEnable requires (etcd `rootUser`).
pub const ROOT_USER: &str = "root";
/// The role that passes every check (etcd `rootRole`).
pub const ROOT_ROLE: &str = "root";
/// The auth revision of a store that was never changed (etcd `NewAuthStore` commits
/// revision 1 into an empty backend).
pub const INITIAL_REVISION: u64 = 1;
/// The auth revision the server's own requests carry (automatic compaction): they pass
/// every check, as etcd's internal requests bypass the API layer.
pub const INTERNAL_REVISION: u64 = u64::MAX;

/// The kind of access a check asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Range, watch, compares (etcd `authpb.READ`).
    Read,
    /// Put, DeleteRange (etcd `authpb.WRITE`).
    Write,
}

/// A key interval `[begin, end)` where an empty `end` is +∞ (etcd
/// `adt.BytesAffineComparable`: an empty byte string compares above every other).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    begin: Bytes,
    end: Bytes,
}

/// etcd `BytesAffineComparable.Compare`.
fn affine_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        (false, false) => a.cmp(b),
    }
}

impl Interval {
    /// etcd `NewBytesAffinePoint`: `[key, key + "\0")`.
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval {
            begin: Bytes::copy_from_slice(key),
            end: end.into(),
        }
    }

    /// The interval a permission or a request names: a point without a range end, to +∞
    /// for a range end of `"\0"`.
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        if range_end.is_empty() {
            return Interval::point(key);
        }
        let end = if range_end == [0] { &[][..] } else { range_end };
        Interval {
            begin: Bytes::copy_from_slice(key),
            end: Bytes::copy_from_slice(end),
        }
    }

    /// etcd `Interval.Compare(...) == 0`.
    fn overlaps(&self, other: &Interval) -> bool {
        use std::cmp::Ordering::*;
        let left = affine_cmp(&self.begin, &other.begin) == Less
            && affine_cmp(&self.end, &other.begin) != Greater;
        let right = affine_cmp(&self.begin, &other.end) != Less;
        !left && !right
    }
}

/// One user's permissions merged over its roles (etcd `unifiedRangePermissions`), each
/// set sorted by begin as the interval tree visits them.
#[derive(Clone, Debug, Default)]
struct MergedPerms {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

impl MergedPerms {
    fn set(&self, access: Access) -> &[Interval] {
        match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        }
    }

    /// etcd `checkKeyPoint`: some interval holds `key`.
    fn holds_key(&self, access: Access, key: &[u8]) -> bool {
        let point = Interval::point(key);
        self.set(access).iter().any(|i| i.overlaps(&point))
    }

    /// etcd `checkKeyInterval` → `IntervalTree.Contains`: the intervals meeting the range,
    /// in begin order, have no gap and reach from its begin to its end.
    fn covers(&self, access: Access, range: &Interval) -> bool {
        let mut min_begin: Option<&Bytes> = None;
        let mut max_end: Option<&Bytes> = None;
        for i in self.set(access).iter().filter(|i| range.overlaps(i)) {
            match max_end {
                None => {
                    min_begin = Some(&i.begin);
                    max_end = Some(&i.end);
                }
                Some(end) => {
                    if affine_cmp(end, &i.begin).is_lt() {
                        return false;
                    }
                    if affine_cmp(&i.end, end).is_gt() {
                        max_end = Some(&i.end);
                    }
                }
            }
        }
        match (min_begin, max_end) {
            (Some(begin), Some(end)) => {
                affine_cmp(end, &range.end).is_ge() && affine_cmp(begin, &range.begin).is_le()
            }
            _ => false,
        }
    }
}

/// The auth store: etcd's `auth`, `authUsers` and `authRoles` buckets as state.
#[derive(Clone, Debug)]
pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Merged permissions of every user, rebuilt on each change (etcd
    /// `refreshRangePermCache`).
    perms: HashMap<String, Arc<MergedPerms>>,
}

impl Default for AuthStore {
    fn default() -> Self {
        AuthStore {
            enabled: false,
            revision: INITIAL_REVISION,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            perms: HashMap::new(),
        }
    }
}

/// Equal when the state is (the permission cache follows from it).
impl PartialEq for AuthStore {
    fn eq(&self, other: &Self) -> bool {
        self.enabled == other.enabled
            && self.revision == other.revision
            && self.users == other.users
            && self.roles == other.roles
    }
}

impl Eq for AuthStore {}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT_ROLE)
}

fn name_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl AuthStore {
    /// Whether auth is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A user's record.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// etcd `HasRole`.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    fn commit(&mut self) {
        self.revision += 1;
        self.refresh_perms();
    }

    fn refresh_perms(&mut self) {
        let mut perms = HashMap::with_capacity(self.users.len());
        for (name, user) in &self.users {
            let mut merged = MergedPerms::default();
            for role in user.roles.iter().filter_map(|r| self.roles.get(r)) {
                for p in &role.key_permission {
                    let interval = Interval::of(&p.key, &p.range_end);
                    match PermType::try_from(p.perm_type) {
                        Ok(PermType::Readwrite) => {
                            merged.read.push(interval.clone());
                            merged.write.push(interval);
                        }
                        Ok(PermType::Read) => merged.read.push(interval),
                        Ok(PermType::Write) => merged.write.push(interval),
                        Err(_) => {}
                    }
                }
            }
            merged.read.sort_by(|a, b| affine_cmp(&a.begin, &b.begin));
            merged.write.sort_by(|a, b| affine_cmp(&a.begin, &b.begin));
            perms.insert(name.clone(), Arc::new(merged));
        }
        self.perms = perms;
    }

    /// etcd `isOpPermitted`: `range_end` empty for one key. Errors: "user name is empty"
    /// (no user while enabled), "revision of auth store is old", "permission denied".
    pub fn check_op(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<(), Status> {
        if !self.enabled || info.revision == INTERNAL_REVISION {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(errors::user_empty());
        }
        if info.revision < self.revision {
            return Err(errors::auth_old_revision());
        }
        let Some(user) = self.users.get(&info.username) else {
            return Err(errors::permission_denied());
        };
        if has_root_role(user) {
            return Ok(());
        }
        let Some(perms) = self.perms.get(&info.username) else {
            return Err(errors::permission_denied());
        };
        let permitted = if range_end.is_empty() {
            perms.holds_key(access, key)
        } else {
            perms.covers(access, &Interval::of(key, range_end))
        };
        if permitted {
            Ok(())
        } else {
            Err(errors::permission_denied())
        }
    }

    /// etcd `IsAdminPermitted`: the user holds the `root` role. Errors: "user name is
    /// empty", "user name not found", "permission denied".
    pub fn check_admin(&self, info: &AuthInfo) -> Result<(), Status> {
        if !self.enabled || info.revision == INTERNAL_REVISION {
            return Ok(());
        }
        if info.username.is_empty() {
            return Err(errors::user_empty());
        }
        match self.users.get(&info.username) {
            None => Err(errors::user_not_found()),
            Some(u) if !has_root_role(u) => Err(errors::permission_denied()),
            Some(_) => Ok(()),
        }
    }

    /// AuthEnable (etcd `AuthEnable`): idempotent; the revision does not change.
    pub fn enable(&mut self) -> Result<(), Status> {
        if self.enabled {
            return Ok(());
        }
        let root = self
            .users
            .get(ROOT_USER)
            .ok_or_else(errors::root_user_not_exist)?;
        if !has_root_role(root) {
            return Err(errors::root_role_not_exist());
        }
        self.enabled = true;
        self.refresh_perms();
        Ok(())
    }

    /// AuthDisable (etcd `AuthDisable`): a change of revision when it was enabled.
    pub fn disable(&mut self) {
        if self.enabled {
            self.enabled = false;
            self.commit();
        }
    }

    /// The user Authenticate may issue a token for (etcd `Authenticate` at apply):
    /// "authentication is not enabled", or "authentication failed" for an unknown user or
    /// one without a password.
    pub fn authenticate(&self, name: &str) -> Result<(), Status> {
        if !self.enabled {
            return Err(errors::auth_not_enabled());
        }
        match self.users.get(name) {
            Some(u) if !u.options.as_ref().is_some_and(|o| o.no_password) => Ok(()),
            _ => Err(errors::auth_failed()),
        }
    }

    /// UserAdd with the bcrypt hash already made (`hashed`, empty for `--no-password`).
    pub fn user_add(&mut self, r: &AuthUserAddRequest, hashed: Bytes) -> Result<(), Status> {
        if r.name.is_empty() {
            return Err(errors::user_empty());
        }
        if self.users.contains_key(&r.name) {
            return Err(errors::user_already_exist());
        }
        let options = r.options.unwrap_or(UserAddOptions { no_password: false });
        let user = User {
            name: Bytes::copy_from_slice(r.name.as_bytes()),
            password: hashed,
            roles: Vec::new(),
            options: Some(options),
        };
        self.users.insert(r.name.clone(), user);
        self.commit();
        Ok(())
    }

    /// UserDelete; the caller drops the user's tokens.
    pub fn user_delete(&mut self, name: &str) -> Result<(), Status> {
        if self.enabled && name == ROOT_USER {
            return Err(errors::invalid_auth_mgmt());
        }
        self.users.remove(name).ok_or_else(errors::user_not_found)?;
        self.commit();
        Ok(())
    }

    /// UserChangePassword with the new bcrypt hash; the caller drops the user's tokens.
    pub fn user_change_password(
        &mut self,
        r: &AuthUserChangePasswordRequest,
        hashed: Bytes,
    ) -> Result<(), Status> {
        let user = self
            .users
            .get_mut(&r.name)
            .ok_or_else(errors::user_not_found)?;
        user.password = hashed;
        self.commit();
        Ok(())
    }

    /// UserGrantRole: roles stay sorted; granting a held role changes nothing.
    pub fn user_grant_role(&mut self, r: &AuthUserGrantRoleRequest) -> Result<(), Status> {
        if !self.users.contains_key(&r.user) {
            return Err(errors::user_not_found());
        }
        if r.role != ROOT_ROLE && !self.roles.contains_key(&r.role) {
            return Err(errors::role_not_found());
        }
        let user = self.users.get_mut(&r.user).expect("checked above");
        match user.roles.binary_search(&r.role) {
            Ok(_) => return Ok(()),
            Err(at) => user.roles.insert(at, r.role.clone()),
        }
        self.commit();
        Ok(())
    }

    /// UserRevokeRole.
    pub fn user_revoke_role(&mut self, r: &AuthUserRevokeRoleRequest) -> Result<(), Status> {
        if self.enabled && r.name == ROOT_USER && r.role == ROOT_ROLE {
            return Err(errors::invalid_auth_mgmt());
        }
        let user = self
            .users
            .get_mut(&r.name)
            .ok_or_else(errors::user_not_found)?;
        let before = user.roles.len();
        user.roles.retain(|role| *role != r.role);
        if user.roles.len() == before {
            return Err(errors::role_not_granted());
        }
        self.commit();
        Ok(())
    }

    /// UserGet: the user's roles.
    pub fn user_get(&self, name: &str) -> Result<AuthUserGetResponse, Status> {
        let user = self.users.get(name).ok_or_else(errors::user_not_found)?;
        Ok(AuthUserGetResponse {
            header: None,
            roles: user.roles.clone(),
        })
    }

    /// UserList: names in byte order (the bucket's order).
    pub fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// RoleAdd.
    pub fn role_add(&mut self, name: &str) -> Result<(), Status> {
        if name.is_empty() {
            return Err(errors::role_empty());
        }
        if self.roles.contains_key(name) {
            return Err(errors::role_already_exist());
        }
        let role = Role {
            name: Bytes::copy_from_slice(name.as_bytes()),
            key_permission: Vec::new(),
        };
        self.roles.insert(name.to_string(), role);
        self.commit();
        Ok(())
    }

    /// RoleGet: the role's permissions, sorted by key.
    pub fn role_get(&self, name: &str) -> Result<AuthRoleGetResponse, Status> {
        let role = self.roles.get(name).ok_or_else(errors::role_not_found)?;
        Ok(AuthRoleGetResponse {
            header: None,
            perm: role.key_permission.clone(),
        })
    }

    /// RoleList: names in byte order.
    pub fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// RoleDelete: also taken from every user holding it.
    pub fn role_delete(&mut self, name: &str) -> Result<(), Status> {
        if self.enabled && name == ROOT_ROLE {
            return Err(errors::invalid_auth_mgmt());
        }
        self.roles.remove(name).ok_or_else(errors::role_not_found)?;
        for user in self.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.commit();
        Ok(())
    }

    /// RoleGrantPermission: a permission on the same key and range end is replaced
    /// (its type updated), otherwise added; permissions stay sorted by key (a stable sort,
    /// as Go's `sort.Sort` on the appended slice keeps equal keys in place only by
    /// chance — equal keys with different range ends keep insertion order here).
    pub fn role_grant_permission(
        &mut self,
        r: &AuthRoleGrantPermissionRequest,
    ) -> Result<(), Status> {
        let role = self
            .roles
            .get_mut(&r.name)
            .ok_or_else(errors::role_not_found)?;
        let perm = r.perm.clone().unwrap_or_default();
        let at = role
            .key_permission
            .partition_point(|p| p.key.as_ref() < perm.key.as_ref());
        match role.key_permission.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type;
            }
            _ => {
                role.key_permission.push(Permission {
                    perm_type: perm.perm_type,
                    key: perm.key,
                    range_end: perm.range_end,
                });
                role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        self.commit();
        Ok(())
    }

    /// RoleRevokePermission: the permission with exactly this key and range end.
    pub fn role_revoke_permission(
        &mut self,
        r: &AuthRoleRevokePermissionRequest,
    ) -> Result<(), Status> {
        let role = self
            .roles
            .get_mut(&r.role)
            .ok_or_else(errors::role_not_found)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| !(p.key == r.key && p.range_end == r.range_end));
        if role.key_permission.len() == before {
            return Err(errors::permission_not_granted());
        }
        self.commit();
        Ok(())
    }

    /// etcd's bucket records: `auth` (`authEnabled` → `[1]`/`[0]`, `authRevision` → u64
    /// big-endian), then every `authUsers` and `authRoles` record (name → protobuf), as
    /// `(bucket, key, value)` for a snapshot.
    pub fn bucket_records(&self) -> Vec<(&'static [u8], Vec<u8>, Vec<u8>)> {
        use engine::etcd_backend::{BUCKET_AUTH, BUCKET_AUTH_ROLES, BUCKET_AUTH_USERS};
        let mut out = vec![
            (
                BUCKET_AUTH,
                b"authEnabled".to_vec(),
                vec![u8::from(self.enabled)],
            ),
            (
                BUCKET_AUTH,
                b"authRevision".to_vec(),
                self.revision.to_be_bytes().to_vec(),
            ),
        ];
        for (name, user) in &self.users {
            out.push((
                BUCKET_AUTH_USERS,
                name.as_bytes().to_vec(),
                user.encode_to_vec(),
            ));
        }
        for (name, role) in &self.roles {
            out.push((
                BUCKET_AUTH_ROLES,
                name.as_bytes().to_vec(),
                role.encode_to_vec(),
            ));
        }
        out
    }

    /// The store from etcd's bucket records (an imported etcd data dir or snapshot):
    /// `auth` entries by key, users and roles as protobuf. Errors name the bad record.
    pub fn from_bucket_records<'a>(
        auth: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        users: impl IntoIterator<Item = &'a [u8]>,
        roles: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<AuthStore, String> {
        let mut store = AuthStore::default();
        for (key, value) in auth {
            match key {
                b"authEnabled" => store.enabled = value == [1],
                b"authRevision" => {
                    let bytes: [u8; 8] = value
                        .try_into()
                        .map_err(|_| format!("auth revision has {} bytes, want 8", value.len()))?;
                    store.revision = u64::from_be_bytes(bytes).max(INITIAL_REVISION);
                }
                _ => {}
            }
        }
        for value in users {
            let user = User::decode(value).map_err(|e| format!("bad auth user: {e}"))?;
            store.users.insert(name_of(&user.name), user);
        }
        for value in roles {
            let role = Role::decode(value).map_err(|e| format!("bad auth role: {e}"))?;
            store.roles.insert(name_of(&role.name), role);
        }
        store.refresh_perms();
        Ok(store)
    }

    /// `enabled u8 | revision u64 LE | users_len u32 LE | users_len × (len u32 LE | User
    /// protobuf) | roles_len u32 LE | roles_len × (len u32 LE | Role protobuf)`: the
    /// checkpoint meta's auth part.
    pub fn encode(&self) -> Vec<u8> {
        use bytes::BufMut;
        let mut buf = Vec::new();
        buf.put_u8(u8::from(self.enabled));
        buf.put_u64_le(self.revision);
        buf.put_u32_le(self.users.len() as u32);
        for user in self.users.values() {
            let bytes = user.encode_to_vec();
            buf.put_u32_le(bytes.len() as u32);
            buf.extend_from_slice(&bytes);
        }
        buf.put_u32_le(self.roles.len() as u32);
        for role in self.roles.values() {
            let bytes = role.encode_to_vec();
            buf.put_u32_le(bytes.len() as u32);
            buf.extend_from_slice(&bytes);
        }
        buf
    }

    /// Parses [`AuthStore::encode`]'s bytes; errors say what is truncated or malformed.
    pub fn decode(mut buf: &[u8]) -> Result<AuthStore, String> {
        use bytes::Buf;
        let truncated = |what: &str| format!("checkpoint meta: auth {what} is truncated");
        if buf.remaining() < 9 {
            return Err(truncated("header"));
        }
        let enabled = buf.get_u8() == 1;
        let revision = buf.get_u64_le();
        let mut records = |what: &str| -> Result<Vec<Vec<u8>>, String> {
            if buf.remaining() < 4 {
                return Err(truncated(what));
            }
            let count = buf.get_u32_le() as usize;
            let mut out = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                if buf.remaining() < 4 {
                    return Err(truncated(what));
                }
                let len = buf.get_u32_le() as usize;
                if buf.remaining() < len {
                    return Err(truncated(what));
                }
                out.push(buf[..len].to_vec());
                buf.advance(len);
            }
            Ok(out)
        };
        let users = records("users")?;
        let roles = records("roles")?;
        let mut store = AuthStore::from_bucket_records(
            [],
            users.iter().map(Vec::as_slice),
            roles.iter().map(Vec::as_slice),
        )?;
        store.enabled = enabled;
        store.revision = revision;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str, revision: u64) -> AuthInfo {
        AuthInfo {
            username: user.into(),
            revision,
        }
    }

    fn perm(t: PermType, key: &str, end: &[u8]) -> AuthRoleGrantPermissionRequest {
        AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: Some(Permission {
                perm_type: t as i32,
                key: Bytes::copy_from_slice(key.as_bytes()),
                range_end: Bytes::copy_from_slice(end),
            }),
        }
    }

    /// root (root role) and alice (role r), auth enabled.
    fn store_with(perms: &[AuthRoleGrantPermissionRequest]) -> AuthStore {
        let mut s = AuthStore::default();
        for name in ["root", "alice"] {
            let add = AuthUserAddRequest {
                name: name.into(),
                ..Default::default()
            };
            s.user_add(&add, Bytes::from_static(b"hash")).unwrap();
        }
        s.role_add("r").unwrap();
        for p in perms {
            s.role_grant_permission(p).unwrap();
        }
        let grant = |user: &str, role: &str| AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        };
        s.user_grant_role(&grant("root", "root")).unwrap();
        s.user_grant_role(&grant("alice", "r")).unwrap();
        s.enable().unwrap();
        s
    }

    #[test]
    fn enable_needs_root_with_root_role() {
        let mut s = AuthStore::default();
        assert_eq!(s.enable().unwrap_err(), errors::root_user_not_exist());
        let add = AuthUserAddRequest {
            name: "root".into(),
            ..Default::default()
        };
        s.user_add(&add, Bytes::new()).unwrap();
        assert_eq!(s.enable().unwrap_err(), errors::root_role_not_exist());
        assert_eq!(s.revision(), 2, "one change since the initial revision");
    }

    #[test]
    fn point_prefix_and_from_key_permissions() {
        let s = store_with(&[
            perm(PermType::Read, "a", b""),
            perm(PermType::Readwrite, "p/", b"p0"),
            perm(PermType::Write, "z", b"\0"),
        ]);
        let rev = s.revision();
        let alice = info("alice", rev);
        let read = |k: &str, e: &[u8]| s.check_op(&alice, k.as_bytes(), e, Access::Read);
        let write = |k: &str, e: &[u8]| s.check_op(&alice, k.as_bytes(), e, Access::Write);
        assert!(read("a", b"").is_ok());
        assert_eq!(write("a", b"").unwrap_err(), errors::permission_denied());
        assert!(read("ab", b"").is_err(), "a point permission is one key");
        assert!(read("p/x", b"").is_ok());
        assert!(read("p/", b"p0").is_ok(), "the whole prefix");
        assert!(read("p/", b"p1").is_err(), "past the prefix");
        assert!(write("zz", b"").is_ok());
        assert!(write("z", b"\0").is_ok(), "from-key covers to +inf");
        assert!(write("y", b"\0").is_err());
        assert!(read("zz", b"").is_err());
        // root passes everything; nobody and old revisions are refused.
        assert!(s
            .check_op(&info("root", rev), b"q", b"", Access::Write)
            .is_ok());
        assert_eq!(
            s.check_op(&AuthInfo::default(), b"a", b"", Access::Read)
                .unwrap_err(),
            errors::user_empty()
        );
        assert_eq!(
            s.check_op(&info("alice", rev - 1), b"a", b"", Access::Read)
                .unwrap_err(),
            errors::auth_old_revision()
        );
        assert_eq!(
            s.check_op(&info("bob", rev), b"a", b"", Access::Read)
                .unwrap_err(),
            errors::permission_denied()
        );
    }

    #[test]
    fn adjacent_intervals_cover_a_range_a_gap_does_not() {
        let s = store_with(&[
            perm(PermType::Read, "a", b"c"),
            perm(PermType::Read, "c", b"e"),
            perm(PermType::Read, "f", b"g"),
        ]);
        let alice = info("alice", s.revision());
        assert!(s.check_op(&alice, b"a", b"e", Access::Read).is_ok());
        assert!(s.check_op(&alice, b"b", b"d", Access::Read).is_ok());
        assert!(s.check_op(&alice, b"a", b"g", Access::Read).is_err());
    }

    #[test]
    fn admin_and_root_protection() {
        let mut s = store_with(&[]);
        let rev = s.revision();
        assert!(s.check_admin(&info("root", rev)).is_ok());
        assert_eq!(
            s.check_admin(&info("alice", rev)).unwrap_err(),
            errors::permission_denied()
        );
        assert_eq!(
            s.check_admin(&info("bob", rev)).unwrap_err(),
            errors::user_not_found()
        );
        assert_eq!(
            s.user_delete("root").unwrap_err(),
            errors::invalid_auth_mgmt()
        );
        assert_eq!(
            s.role_delete("root").unwrap_err(),
            errors::invalid_auth_mgmt()
        );
        let revoke = AuthUserRevokeRoleRequest {
            name: "root".into(),
            role: "root".into(),
        };
        assert_eq!(
            s.user_revoke_role(&revoke).unwrap_err(),
            errors::invalid_auth_mgmt()
        );
        s.disable();
        assert_eq!(s.revision(), rev + 1, "disable is a change");
        assert!(s.check_admin(&AuthInfo::default()).is_ok());
    }

    #[test]
    fn role_delete_takes_it_from_users_and_grants_stay_sorted() {
        let mut s = store_with(&[
            perm(PermType::Read, "m", b""),
            perm(PermType::Read, "b", b""),
        ]);
        let keys: Vec<_> = s
            .role_get("r")
            .unwrap()
            .perm
            .iter()
            .map(|p| p.key.clone())
            .collect();
        assert_eq!(keys, [Bytes::from_static(b"b"), Bytes::from_static(b"m")]);
        s.role_grant_permission(&perm(PermType::Write, "b", b""))
            .unwrap();
        assert_eq!(
            s.role_get("r").unwrap().perm[0].perm_type,
            PermType::Write as i32
        );
        s.role_delete("r").unwrap();
        assert!(s.user_get("alice").unwrap().roles.is_empty());
    }

    #[test]
    fn encode_and_bucket_records_round_trip() {
        let s = store_with(&[perm(PermType::Read, "p/", b"p0")]);
        let back = AuthStore::decode(&s.encode()).unwrap();
        assert_eq!(back.encode(), s.encode());
        assert!(back.enabled());
        let records = s.bucket_records();
        let auth = records
            .iter()
            .filter(|r| r.0 == b"auth")
            .map(|r| (&r.1[..], &r.2[..]));
        let users = records
            .iter()
            .filter(|r| r.0 == b"authUsers")
            .map(|r| &r.2[..]);
        let roles = records
            .iter()
            .filter(|r| r.0 == b"authRoles")
            .map(|r| &r.2[..]);
        let imported = AuthStore::from_bucket_records(auth, users, roles).unwrap();
        assert_eq!(imported.encode(), s.encode());
        assert!(AuthStore::decode(&s.encode()[..5]).is_err());
    }
}
