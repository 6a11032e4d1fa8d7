//! `user add|delete|get|list|passwd|grant-role|revoke-role`, `role add|delete|get|list|
//! grant-permission|revoke-permission`, `auth enable|disable`: etcdctl 3.4's
//! `user_command.go`, `role_command.go`, `auth_command.go` and their printers.
//!
//! Passwords come from `name:password`, `--new-user-password`, the terminal prompt (twice,
//! `Password of NAME: `) or (`--interactive=false`) the first word of stdin, read by
//! [`user_password`] before the connection is made, as etcdctl reads them.

use std::io::Read;

use bytes::Bytes;
use net::pb::authpb::{permission, Permission, UserAddOptions};
use net::pb::etcdserverpb::*;
use prost::Message;

use super::go::{self, JsonObject};
use super::kv::{fields_header, json_header, prefix_range_end, write_out};
use super::{exit, CtlError, CtlResult, Format, Session};

/// `user` subcommands' arguments.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Adds a new user.
    Add {
        /// `<user name or user:password>`.
        args: Vec<String>,
        /// Read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        interactive: bool,
        /// Supply password from the command line flag
        #[arg(long, default_value = "")]
        new_user_password: String,
        /// Create a user without password (CN based auth only)
        #[arg(long)]
        no_password: bool,
    },
    /// Deletes a user.
    Delete {
        /// `<user name>`.
        args: Vec<String>,
    },
    /// Gets detailed information of a user.
    Get {
        /// `<user name>`.
        args: Vec<String>,
        /// Show permissions of roles granted to the user
        #[arg(long)]
        detail: bool,
    },
    /// Lists all users.
    List {
        /// None accepted.
        args: Vec<String>,
    },
    /// Changes password of user.
    Passwd {
        /// `<user name>`.
        args: Vec<String>,
        /// If true, read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user.
    #[command(name = "grant-role")]
    GrantRole {
        /// `<user name> <role name>`.
        args: Vec<String>,
    },
    /// Revokes a role from a user.
    #[command(name = "revoke-role")]
    RevokeRole {
        /// `<user name> <role name>`.
        args: Vec<String>,
    },
}

/// `role` subcommands' arguments.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum RoleCommand {
    /// Adds a new role.
    Add {
        /// `<role name>`.
        args: Vec<String>,
    },
    /// Deletes a role.
    Delete {
        /// `<role name>`.
        args: Vec<String>,
    },
    /// Gets detailed information of a role.
    Get {
        /// `<role name>`.
        args: Vec<String>,
    },
    /// Lists all roles.
    List {
        /// None accepted.
        args: Vec<String>,
    },
    /// Grants a key to a role.
    #[command(name = "grant-permission")]
    GrantPermission {
        /// `<role name> <permission type> <key> [endkey]`.
        args: Vec<String>,
        /// grant a prefix permission
        #[arg(long)]
        prefix: bool,
        /// grant a permission of keys that are greater than or equal to the given key using byte compare
        #[arg(long)]
        from_key: bool,
    },
    /// Revokes a key from a role.
    #[command(name = "revoke-permission")]
    RevokePermission {
        /// `<role name> <key> [endkey]`.
        args: Vec<String>,
        /// revoke a prefix permission
        #[arg(long)]
        prefix: bool,
        /// revoke a permission of keys that are greater than or equal to the given key using byte compare
        #[arg(long)]
        from_key: bool,
    },
}

fn bad_args(message: &str) -> CtlError {
    CtlError::new(exit::BAD_ARGS, message)
}

/// The printers that have a method for this response: `fields` only where etcdctl's
/// fields printer has one, never `table`.
/// `user list` / `role list` (etcdctl's printers): one name a line; `-w json` as
/// `{"header":…,"<key>":[…]}`; `-w fields` (role list only) as `"Roles" : "a" "b"`;
/// `-w protobuf` as the encoded response.
fn names_out(
    format: Format,
    header: Option<&ResponseHeader>,
    key: &str,
    names: &[String],
    encoded: impl FnOnce() -> Vec<u8>,
) -> Vec<u8> {
    match format {
        Format::Simple => names
            .iter()
            .map(|x| format!("{x}\n"))
            .collect::<String>()
            .into_bytes(),
        Format::Fields => {
            let quoted: String = names
                .iter()
                .map(|x| format!(" {}", go::quote(x.as_bytes())))
                .collect();
            let label = format!("{}{}", key[..1].to_uppercase(), &key[1..]);
            format!("{}\"{label}\" :{quoted}\n", fields_header(header)).into_bytes()
        }
        Format::Json => JsonObject::new()
            .object("header", json_header(header))
            .array(key, names.iter().map(|x| go::string(x)).collect())
            .line(),
        _ => encoded(),
    }
}

fn check_format(format: Format, has_fields: bool) -> CtlResult {
    match format {
        Format::Table => Err(CtlError::unsupported(format)),
        Format::Fields if !has_fields => Err(CtlError::unsupported(format)),
        _ => Ok(()),
    }
}

/// The common output: a line for `simple`, the header for `fields` and `json`, the
/// encoding for `protobuf`.
fn header_only(
    format: Format,
    simple: String,
    header: Option<&ResponseHeader>,
    encoded: Vec<u8>,
) -> Vec<u8> {
    match format {
        Format::Simple => simple.into_bytes(),
        Format::Fields => fields_header(header).into_bytes(),
        Format::Json => JsonObject::new()
            .object("header", json_header(header))
            .line(),
        _ => encoded,
    }
}

/// First whitespace-delimited word of stdin (Go's `fmt.Scanf("%s")`).
fn password_from_stdin() -> String {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    input.split_whitespace().next().unwrap_or("").to_string()
}

/// The password `user add` / `user passwd` read from the terminal or stdin, before
/// etcdctl dials (`userAddCommandFunc`, `userChangePasswordCommandFunc`): `None` when
/// the command takes it from its arguments or flags, or has the wrong arguments (then
/// [`user`] refuses them). Errors as [`super::global::ask_new_password`].
pub fn user_password(command: &UserCommand) -> CtlResult<Option<String>> {
    let (name, interactive) = match command {
        UserCommand::Add {
            args,
            interactive,
            new_user_password,
            no_password,
        } if args.len() == 1
            && !no_password
            && new_user_password.is_empty()
            && !args[0].contains(':') =>
        {
            (&args[0], *interactive)
        }
        UserCommand::Passwd { args, interactive } if args.len() == 1 => (&args[0], *interactive),
        _ => return Ok(None),
    };
    if interactive {
        super::global::ask_new_password(name).map(Some)
    } else {
        Ok(Some(password_from_stdin()))
    }
}

/// `user ...`; `password`: what [`user_password`] read.
pub async fn user(s: &Session, command: &UserCommand, password: Option<String>) -> CtlResult {
    match command {
        UserCommand::Add {
            args,
            new_user_password,
            no_password,
            ..
        } => {
            if args.len() != 1 {
                return Err(bad_args(
                    "user add command requires user name as its argument",
                ));
            }
            let (name, password) = if *no_password {
                (args[0].clone(), String::new())
            } else if !new_user_password.is_empty() {
                (args[0].clone(), new_user_password.clone())
            } else if let Some((name, password)) = args[0].split_once(':') {
                if name.is_empty() {
                    return Err(bad_args("empty user name is not allowed"));
                }
                (name.to_string(), password.to_string())
            } else {
                let password = password.expect("user_password read the password");
                (args[0].clone(), password)
            };
            check_format(s.format, true)?;
            let request = AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(UserAddOptions {
                    no_password: *no_password,
                }),
                ..Default::default()
            };
            let r: AuthUserAddResponse = s.call("/etcdserverpb.Auth/UserAdd", &request).await?;
            let out = header_only(
                s.format,
                format!("User {name} created\n"),
                r.header.as_ref(),
                r.encode_to_vec(),
            );
            write_out(&out);
        }
        UserCommand::Delete { args } => {
            if args.len() != 1 {
                return Err(bad_args(
                    "user delete command requires user name as its argument",
                ));
            }
            check_format(s.format, true)?;
            let request = AuthUserDeleteRequest {
                name: args[0].clone(),
            };
            let r: AuthUserDeleteResponse =
                s.call("/etcdserverpb.Auth/UserDelete", &request).await?;
            let out = header_only(
                s.format,
                format!("User {} deleted\n", args[0]),
                r.header.as_ref(),
                r.encode_to_vec(),
            );
            write_out(&out);
        }
        UserCommand::Get { args, detail } => {
            if args.len() != 1 {
                return Err(bad_args(
                    "user get command requires user name as its argument",
                ));
            }
            let name = &args[0];
            let request = AuthUserGetRequest { name: name.clone() };
            let r: AuthUserGetResponse = s.call("/etcdserverpb.Auth/UserGet", &request).await?;
            if *detail {
                write_out(format!("User: {name}\n").as_bytes());
                for role in &r.roles {
                    write_out(b"\n");
                    role_get(s, role).await?;
                }
                return Ok(());
            }
            check_format(s.format, false)?;
            let out = match s.format {
                Format::Simple => {
                    let roles: String = r.roles.iter().map(|role| format!(" {role}")).collect();
                    format!("User: {name}\nRoles:{roles}\n").into_bytes()
                }
                Format::Json => JsonObject::new()
                    .object("header", json_header(r.header.as_ref()))
                    .array("roles", r.roles.iter().map(|x| go::string(x)).collect())
                    .line(),
                _ => r.encode_to_vec(),
            };
            write_out(&out);
        }
        UserCommand::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("user list command requires no arguments"));
            }
            check_format(s.format, false)?;
            let r: AuthUserListResponse = s
                .call("/etcdserverpb.Auth/UserList", &AuthUserListRequest {})
                .await?;
            let out = names_out(s.format, r.header.as_ref(), "users", &r.users, || {
                r.encode_to_vec()
            });
            write_out(&out);
        }
        UserCommand::Passwd { args, .. } => {
            if args.len() != 1 {
                return Err(bad_args(
                    "user passwd command requires user name as its argument",
                ));
            }
            let password = password.expect("user_password read the password");
            check_format(s.format, true)?;
            let request = AuthUserChangePasswordRequest {
                name: args[0].clone(),
                password,
                ..Default::default()
            };
            let r: AuthUserChangePasswordResponse = s
                .call("/etcdserverpb.Auth/UserChangePassword", &request)
                .await?;
            let out = header_only(
                s.format,
                "Password updated\n".into(),
                r.header.as_ref(),
                r.encode_to_vec(),
            );
            write_out(&out);
        }
        UserCommand::GrantRole { args } => {
            if args.len() != 2 {
                return Err(bad_args(
                    "user grant command requires user name and role name as its argument",
                ));
            }
            check_format(s.format, true)?;
            let request = AuthUserGrantRoleRequest {
                user: args[0].clone(),
                role: args[1].clone(),
            };
            let r: AuthUserGrantRoleResponse =
                s.call("/etcdserverpb.Auth/UserGrantRole", &request).await?;
            let out = header_only(
                s.format,
                format!("Role {} is granted to user {}\n", args[1], args[0]),
                r.header.as_ref(),
                r.encode_to_vec(),
            );
            write_out(&out);
        }
        UserCommand::RevokeRole { args } => {
            if args.len() != 2 {
                return Err(bad_args(
                    "user revoke-role requires user name and role name as its argument",
                ));
            }
            check_format(s.format, true)?;
            let request = AuthUserRevokeRoleRequest {
                name: args[0].clone(),
                role: args[1].clone(),
            };
            let r: AuthUserRevokeRoleResponse = s
                .call("/etcdserverpb.Auth/UserRevokeRole", &request)
                .await?;
            let out = header_only(
                s.format,
                format!("Role {} is revoked from user {}\n", args[1], args[0]),
                r.header.as_ref(),
                r.encode_to_vec(),
            );
            write_out(&out);
        }
    }
    Ok(())
}

/// etcdctl's `permRange`: key and range end of a permission's arguments and flags.
fn perm_range(args: &[String], prefix: bool, from_key: bool) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    let key = args[0].as_bytes().to_vec();
    if key.is_empty() {
        if prefix && from_key {
            return Err(bad_args(
                "--from-key and --prefix flags are mutually exclusive",
            ));
        }
        let end = if prefix || from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    if args.len() == 1 {
        if prefix {
            if from_key {
                return Err(bad_args(
                    "--from-key and --prefix flags are mutually exclusive",
                ));
            }
            return Ok((key.clone(), prefix_range_end(&key)));
        }
        if from_key {
            return Ok((key, vec![0]));
        }
        return Ok((key, Vec::new()));
    }
    if prefix {
        return Err(bad_args("unexpected endkey argument with --prefix flag"));
    }
    if from_key {
        return Err(bad_args("unexpected endkey argument with --from-key flag"));
    }
    Ok((key, args[1].as_bytes().to_vec()))
}

/// The simple printer's line of one permission range.
fn simple_perm(p: &Permission) -> String {
    let key = String::from_utf8_lossy(&p.key);
    if p.range_end.is_empty() {
        return format!("\t{key}\n");
    }
    let end = String::from_utf8_lossy(&p.range_end);
    let mut line = if p.range_end.as_ref() != b"\0" {
        format!("\t[{key}, {end})")
    } else {
        format!("\t[{key}, <open ended>")
    };
    if prefix_range_end(&p.key) == p.range_end.as_ref() {
        line.push_str(&format!(" (prefix {key})"));
    }
    line + "\n"
}

async fn role_get(s: &Session, role: &str) -> CtlResult {
    let request = AuthRoleGetRequest {
        role: role.to_string(),
    };
    check_format(s.format, true)?;
    let r: AuthRoleGetResponse = s.call("/etcdserverpb.Auth/RoleGet", &request).await?;
    let read =
        |t: i32| t == permission::Type::Read as i32 || t == permission::Type::Readwrite as i32;
    let write =
        |t: i32| t == permission::Type::Write as i32 || t == permission::Type::Readwrite as i32;
    let out = match s.format {
        Format::Simple => {
            let mut out = format!("Role {role}\nKV Read:\n");
            for p in r.perm.iter().filter(|p| read(p.perm_type)) {
                out.push_str(&simple_perm(p));
            }
            out.push_str("KV Write:\n");
            for p in r.perm.iter().filter(|p| write(p.perm_type)) {
                out.push_str(&simple_perm(p));
            }
            out.into_bytes()
        }
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for p in &r.perm {
                let name = permission::Type::try_from(p.perm_type)
                    .map(|t| t.as_str_name())
                    .unwrap_or("UNKNOWN");
                out.push_str(&format!(
                    "\"PermType\" :  {name}\n\"Key\" : {}\n\"RangeEnd\" : {}\n",
                    go::quote(&p.key),
                    go::quote(&p.range_end)
                ));
            }
            out.into_bytes()
        }
        Format::Json => JsonObject::new()
            .object("header", json_header(r.header.as_ref()))
            .array(
                "perm",
                r.perm
                    .iter()
                    .map(|p| {
                        JsonObject::new()
                            .num("permType", p.perm_type)
                            .bytes("key", &p.key)
                            .bytes("range_end", &p.range_end)
                            .encode()
                    })
                    .collect(),
            )
            .line(),
        _ => r.encode_to_vec(),
    };
    write_out(&out);
    Ok(())
}

/// `role ...`.
pub async fn role(s: &Session, command: &RoleCommand) -> CtlResult {
    match command {
        RoleCommand::Add { args } | RoleCommand::Delete { args } => {
            let add = matches!(command, RoleCommand::Add { .. });
            if args.len() != 1 {
                return Err(bad_args(if add {
                    "role add command requires role name as its argument"
                } else {
                    "role delete command requires role name as its argument"
                }));
            }
            check_format(s.format, true)?;
            let (header, encoded, verb) = if add {
                let r: AuthRoleAddResponse = s
                    .call(
                        "/etcdserverpb.Auth/RoleAdd",
                        &AuthRoleAddRequest {
                            name: args[0].clone(),
                        },
                    )
                    .await?;
                (r.header, r.encode_to_vec(), "created")
            } else {
                let r: AuthRoleDeleteResponse = s
                    .call(
                        "/etcdserverpb.Auth/RoleDelete",
                        &AuthRoleDeleteRequest {
                            role: args[0].clone(),
                        },
                    )
                    .await?;
                (r.header, r.encode_to_vec(), "deleted")
            };
            let out = header_only(
                s.format,
                format!("Role {} {verb}\n", args[0]),
                header.as_ref(),
                encoded,
            );
            write_out(&out);
        }
        RoleCommand::Get { args } => {
            if args.len() != 1 {
                return Err(bad_args(
                    "role get command requires role name as its argument",
                ));
            }
            role_get(s, &args[0]).await?;
        }
        RoleCommand::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("role list command requires no arguments"));
            }
            check_format(s.format, true)?;
            let r: AuthRoleListResponse = s
                .call("/etcdserverpb.Auth/RoleList", &AuthRoleListRequest {})
                .await?;
            let out = names_out(s.format, r.header.as_ref(), "roles", &r.roles, || {
                r.encode_to_vec()
            });
            write_out(&out);
        }
        RoleCommand::GrantPermission {
            args,
            prefix,
            from_key,
        } => {
            if args.len() < 3 {
                return Err(bad_args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let perm_type = match args[1].to_uppercase().as_str() {
                "READ" => permission::Type::Read,
                "WRITE" => permission::Type::Write,
                "READWRITE" => permission::Type::Readwrite,
                _ => return Err(bad_args(&format!("invalid permission type: {}", args[1]))),
            };
            let (key, range_end) = perm_range(&args[2..], *prefix, *from_key)?;
            check_format(s.format, true)?;
            let request = AuthRoleGrantPermissionRequest {
                name: args[0].clone(),
                perm: Some(Permission {
                    perm_type: perm_type as i32,
                    key: Bytes::from(key),
                    range_end: Bytes::from(range_end),
                }),
            };
            let r: AuthRoleGrantPermissionResponse = s
                .call("/etcdserverpb.Auth/RoleGrantPermission", &request)
                .await?;
            let out = header_only(
                s.format,
                format!("Role {} updated\n", args[0]),
                r.header.as_ref(),
                r.encode_to_vec(),
            );
            write_out(&out);
        }
        RoleCommand::RevokePermission {
            args,
            prefix,
            from_key,
        } => {
            if args.len() < 2 {
                return Err(bad_args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let (key, range_end) = perm_range(&args[1..], *prefix, *from_key)?;
            check_format(s.format, true)?;
            let request = AuthRoleRevokePermissionRequest {
                role: args[0].clone(),
                key: Bytes::from(key),
                range_end: Bytes::from(range_end.clone()),
            };
            let r: AuthRoleRevokePermissionResponse = s
                .call("/etcdserverpb.Auth/RoleRevokePermission", &request)
                .await?;
            let end = String::from_utf8_lossy(&range_end);
            let simple = if range_end.is_empty() {
                format!(
                    "Permission of key {} is revoked from role {}\n",
                    args[1], args[0]
                )
            } else if range_end != b"\0" {
                format!(
                    "Permission of range [{}, {end}) is revoked from role {}\n",
                    args[1], args[0]
                )
            } else {
                format!(
                    "Permission of range [{}, <open ended> is revoked from role {}\n",
                    args[1], args[0]
                )
            };
            let out = header_only(s.format, simple, r.header.as_ref(), r.encode_to_vec());
            write_out(&out);
        }
    }
    Ok(())
}

/// `auth enable` (adding the root role and granting it to root when etcd asks for it, as
/// etcdctl does) and `auth disable`.
pub async fn auth(s: &Session, enable: bool, args: &[String]) -> CtlResult {
    let which = if enable { "enable" } else { "disable" };
    if !args.is_empty() {
        return Err(bad_args(&format!(
            "auth {which} command does not accept any arguments"
        )));
    }
    if !enable {
        let _: AuthDisableResponse = s
            .call("/etcdserverpb.Auth/AuthDisable", &AuthDisableRequest {})
            .await?;
        println!("Authentication Disabled");
        return Ok(());
    }
    loop {
        match s
            .call::<_, AuthEnableResponse>("/etcdserverpb.Auth/AuthEnable", &AuthEnableRequest {})
            .await
        {
            Ok(_) => break,
            Err(e) if e.message == "etcdserver: root user does not have root role" => {
                let _: AuthRoleAddResponse = s
                    .call(
                        "/etcdserverpb.Auth/RoleAdd",
                        &AuthRoleAddRequest {
                            name: "root".into(),
                        },
                    )
                    .await?;
                let _: AuthUserGrantRoleResponse = s
                    .call(
                        "/etcdserverpb.Auth/UserGrantRole",
                        &AuthUserGrantRoleRequest {
                            user: "root".into(),
                            role: "root".into(),
                        },
                    )
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    println!("Authentication Enabled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_ranges() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            perm_range(&args(&["a"]), true, false).unwrap(),
            (b"a".to_vec(), b"b".to_vec())
        );
        assert_eq!(
            perm_range(&args(&[""]), true, false).unwrap(),
            (vec![0], vec![0])
        );
        assert_eq!(
            perm_range(&args(&["a", "c"]), false, false).unwrap(),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert_eq!(
            perm_range(&args(&["a", "c"]), true, false)
                .unwrap_err()
                .message,
            "unexpected endkey argument with --prefix flag"
        );
    }

    #[test]
    fn simple_permission_lines() {
        let p = |k: &'static [u8], e: &'static [u8]| Permission {
            perm_type: 0,
            key: Bytes::from_static(k),
            range_end: Bytes::from_static(e),
        };
        assert_eq!(simple_perm(&p(b"k", b"")), "\tk\n");
        assert_eq!(simple_perm(&p(b"a", b"b")), "\t[a, b) (prefix a)\n");
        assert_eq!(simple_perm(&p(b"a", b"c")), "\t[a, c)\n");
        assert_eq!(simple_perm(&p(b"a", b"\0")), "\t[a, <open ended>\n");
    }
}
