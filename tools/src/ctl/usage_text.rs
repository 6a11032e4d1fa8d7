//! etcdctl 3.4's help texts, written from `etcdctl <command> --help` (cobra `Use`, `Short`,
//! `Long` and each flag's Go type and usage; etcd `etcdctl/ctlv3/command/*.go`).
//! Which flags a command has comes from cairnctl's clap tree; this table only says how
//! etcdctl words them.

use super::usage::{CommandText, FlagText, GoType};

/// etcdctl's global flags (`ctlv3/ctl.go`, persistent flags of the root command).
pub(super) const GLOBAL_FLAGS: &[FlagText] = &[
    FlagText::new("cacert", GoType::String, "verify certificates of TLS-enabled secure servers using this CA bundle"),
    FlagText::new("cert", GoType::String, "identify secure client using this TLS certificate file"),
    FlagText::new("command-timeout", GoType::Duration, "timeout for short running command (excluding dial timeout)"),
    FlagText::new("debug", GoType::Bool, "enable client-side debug logging"),
    FlagText::new("dial-timeout", GoType::Duration, "dial timeout for client connections"),
    FlagText::new("discovery-srv", GoType::String, "domain name to query for SRV records describing cluster endpoints"),
    FlagText::new("discovery-srv-name", GoType::String, "service name to query when using DNS discovery"),
    FlagText::new("endpoints", GoType::StringSlice, "gRPC endpoints"),
    FlagText::new("hex", GoType::Bool, "print byte strings as hex encoded strings"),
    FlagText::new("insecure-discovery", GoType::Bool, "accept insecure SRV records describing cluster endpoints"),
    FlagText::new("insecure-skip-tls-verify", GoType::Bool, "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)"),
    FlagText::new("insecure-transport", GoType::Bool, "disable transport security for client connections"),
    FlagText::new("keepalive-time", GoType::Duration, "keepalive time for client connections"),
    FlagText::new("keepalive-timeout", GoType::Duration, "keepalive timeout for client connections"),
    FlagText::new("key", GoType::String, "identify secure client using this TLS key file"),
    FlagText::new("password", GoType::String, "password for authentication (if this option is used, --user option shouldn't include password)"),
    FlagText::new("user", GoType::String, "username[:password] for authentication (prompt if password is not supplied)"),
    FlagText::new("write-out", GoType::String, "set the output format (fields, json, protobuf, simple, table)"),
];

/// etcdctl's commands by path (`"member add"`; `""` is the root); flags are the
/// command's own (`inherited`: a persistent flag of its parent, e.g. `endpoint --cluster`).
pub(super) const COMMANDS: &[CommandText] = &[
    CommandText {
        path: "alarm",
        use_line: "alarm <subcommand>",
        short: "Alarm related commands",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "alarm disarm",
        use_line: "disarm",
        short: "Disarms all alarms",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "alarm list",
        use_line: "list",
        short: "Lists all alarms",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "auth",
        use_line: "auth <enable or disable>",
        short: "Enable or disable authentication",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "auth disable",
        use_line: "disable",
        short: "Disables authentication",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "auth enable",
        use_line: "enable",
        short: "Enables authentication",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "check",
        use_line: "check <subcommand>",
        short: "commands for checking properties of the etcd cluster",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "check datascale",
        use_line: "datascale [options]",
        short: "Check the memory usage of holding data for different workloads on a given server endpoint.",
        long: "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
        flags: &[
            FlagText::new("auto-compact", GoType::Bool, "Compact storage with last revision after test is finished."),
            FlagText::new("auto-defrag", GoType::Bool, "Defragment storage after test is finished."),
            FlagText::new("load", GoType::String, "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),
            FlagText::new("prefix", GoType::String, "The prefix for writing the datascale check's keys."),
        ],
    },
    CommandText {
        path: "check perf",
        use_line: "perf [options]",
        short: "Check the performance of the etcd cluster",
        long: "",
        flags: &[
            FlagText::new("auto-compact", GoType::Bool, "Compact storage with last revision after test is finished."),
            FlagText::new("auto-defrag", GoType::Bool, "Defragment storage after test is finished."),
            FlagText::new("load", GoType::String, "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"),
            FlagText::new("prefix", GoType::String, "The prefix for writing the performance check's keys."),
        ],
    },
    CommandText {
        path: "compaction",
        use_line: "compaction [options] <revision>",
        short: "Compacts the event history in etcd",
        long: "",
        flags: &[
            FlagText::new("physical", GoType::Bool, "'true' to wait for compaction to physically remove all old revisions"),
        ],
    },
    CommandText {
        path: "defrag",
        use_line: "defrag",
        short: "Defragments the storage of the etcd members with given endpoints",
        long: "",
        flags: &[
            FlagText::new("cluster", GoType::Bool, "use all endpoints from the cluster member list"),
            FlagText::new("data-dir", GoType::String, "Optional. If present, defragments a data directory not in use by etcd."),
        ],
    },
    CommandText {
        path: "del",
        use_line: "del [options] <key> [range_end]",
        short: "Removes the specified key or range of keys [key, range_end)",
        long: "",
        flags: &[
            FlagText::new("from-key", GoType::Bool, "delete keys that are greater than or equal to the given key using byte compare"),
            FlagText::new("prefix", GoType::Bool, "delete keys with matching prefix"),
            FlagText::new("prev-kv", GoType::Bool, "return deleted key-value pairs"),
        ],
    },
    CommandText {
        path: "elect",
        use_line: "elect <election-name> [proposal]",
        short: "Observes and participates in leader election",
        long: "",
        flags: &[
            FlagText::new("listen", GoType::Bool, "observation mode"),
        ],
    },
    CommandText {
        path: "endpoint",
        use_line: "endpoint <subcommand>",
        short: "Endpoint related commands",
        long: "",
        flags: &[
            FlagText::new("cluster", GoType::Bool, "use all endpoints from the cluster member list"),
        ],
    },
    CommandText {
        path: "endpoint hashkv",
        use_line: "hashkv",
        short: "Prints the KV history hash for each endpoint in --endpoints",
        long: "",
        flags: &[
            FlagText::new("rev", GoType::Int, "maximum revision to hash (default: all revisions)"),
            FlagText::inherited("cluster", GoType::Bool, "use all endpoints from the cluster member list"),
        ],
    },
    CommandText {
        path: "endpoint health",
        use_line: "health",
        short: "Checks the healthiness of endpoints specified in `--endpoints` flag",
        long: "",
        flags: &[
            FlagText::inherited("cluster", GoType::Bool, "use all endpoints from the cluster member list"),
        ],
    },
    CommandText {
        path: "endpoint status",
        use_line: "status",
        short: "Prints out the status of endpoints specified in `--endpoints` flag",
        long: "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.",
        flags: &[
            FlagText::inherited("cluster", GoType::Bool, "use all endpoints from the cluster member list"),
        ],
    },
    CommandText {
        path: "",
        use_line: "",
        short: "A simple command line client for etcd3.",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "get",
        use_line: "get [options] <key> [range_end]",
        short: "Gets the key or a range of keys",
        long: "",
        flags: &[
            FlagText::new("consistency", GoType::String, "Linearizable(l) or Serializable(s)"),
            FlagText::new("from-key", GoType::Bool, "Get keys that are greater than or equal to the given key using byte compare"),
            FlagText::new("keys-only", GoType::Bool, "Get only the keys"),
            FlagText::new("limit", GoType::Int, "Maximum number of results"),
            FlagText::new("order", GoType::String, "Order of results; ASCEND or DESCEND (ASCEND by default)"),
            FlagText::new("prefix", GoType::Bool, "Get keys with matching prefix"),
            FlagText::new("print-value-only", GoType::Bool, "Only write values when using the \"simple\" output format"),
            FlagText::new("rev", GoType::Int, "Specify the kv revision"),
            FlagText::new("sort-by", GoType::String, "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
        ],
    },
    CommandText {
        path: "lease",
        use_line: "lease <subcommand>",
        short: "Lease related commands",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "lease grant",
        use_line: "grant <ttl>",
        short: "Creates leases",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "lease keep-alive",
        use_line: "keep-alive [options] <leaseID>",
        short: "Keeps leases alive (renew)",
        long: "",
        flags: &[
            FlagText::new("once", GoType::Bool, "Resets the keep-alive time to its original value and exits immediately"),
        ],
    },
    CommandText {
        path: "lease list",
        use_line: "list",
        short: "List all active leases",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "lease revoke",
        use_line: "revoke <leaseID>",
        short: "Revokes leases",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "lease timetolive",
        use_line: "timetolive <leaseID> [options]",
        short: "Get lease information",
        long: "",
        flags: &[
            FlagText::new("keys", GoType::Bool, "Get keys attached to this lease"),
        ],
    },
    CommandText {
        path: "lock",
        use_line: "lock <lockname> [exec-command arg1 arg2 ...]",
        short: "Acquires a named lock",
        long: "",
        flags: &[
            FlagText::new("ttl", GoType::Int, "timeout for session"),
        ],
    },
    CommandText {
        path: "make-mirror",
        use_line: "make-mirror [options] <destination>",
        short: "Makes a mirror at the destination etcd cluster",
        long: "",
        flags: &[
            FlagText::new("dest-cacert", GoType::String, "Verify certificates of TLS enabled secure servers using this CA bundle"),
            FlagText::new("dest-cert", GoType::String, "Identify secure client using this TLS certificate file for the destination cluster"),
            FlagText::new("dest-insecure-transport", GoType::Bool, "Disable transport security for client connections"),
            FlagText::new("dest-key", GoType::String, "Identify secure client using this TLS key file"),
            FlagText::new("dest-prefix", GoType::String, "destination prefix to mirror a prefix to a different prefix in the destination cluster"),
            FlagText::new("no-dest-prefix", GoType::Bool, "mirror key-values to the root of the destination cluster"),
            FlagText::new("prefix", GoType::String, "Key-value prefix to mirror"),
        ],
    },
    CommandText {
        path: "member",
        use_line: "member <subcommand>",
        short: "Membership related commands",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "member add",
        use_line: "add <memberName> [options]",
        short: "Adds a member into the cluster",
        long: "",
        flags: &[
            FlagText::new("learner", GoType::Bool, "indicates if the new member is raft learner"),
            FlagText::new("peer-urls", GoType::String, "comma separated peer URLs for the new member."),
        ],
    },
    CommandText {
        path: "member list",
        use_line: "list",
        short: "Lists all members in the cluster",
        long: "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.",
        flags: &[],
    },
    CommandText {
        path: "member promote",
        use_line: "promote <memberID>",
        short: "Promotes a non-voting member in the cluster",
        long: "Promotes a non-voting learner member to a voting one in the cluster.",
        flags: &[],
    },
    CommandText {
        path: "member remove",
        use_line: "remove <memberID>",
        short: "Removes a member from the cluster",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "member update",
        use_line: "update <memberID> [options]",
        short: "Updates a member in the cluster",
        long: "",
        flags: &[
            FlagText::new("peer-urls", GoType::String, "comma separated peer URLs for the updated member."),
        ],
    },
    CommandText {
        path: "migrate",
        use_line: "migrate",
        short: "Migrates keys in a v2 store to a mvcc store",
        long: "",
        flags: &[
            FlagText::new("data-dir", GoType::String, "Path to the data directory"),
            FlagText::new("no-ttl", GoType::Bool, "Do not convert TTL keys"),
            FlagText::new("transformer", GoType::String, "Path to the user-provided transformer program"),
            FlagText::new("wal-dir", GoType::String, "Path to the WAL directory"),
        ],
    },
    CommandText {
        path: "move-leader",
        use_line: "move-leader <transferee-member-id>",
        short: "Transfers leadership to another etcd cluster member.",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "put",
        use_line: "put [options] <key> <value> (<value> can also be given from stdin)",
        short: "Puts the given key into the store",
        long: "Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.",
        flags: &[
            FlagText::new("ignore-lease", GoType::Bool, "updates the key using its current lease"),
            FlagText::new("ignore-value", GoType::Bool, "updates the key using its current value"),
            FlagText::new("lease", GoType::String, "lease ID (in hexadecimal) to attach to the key"),
            FlagText::new("prev-kv", GoType::Bool, "return the previous key-value pair before modification"),
        ],
    },
    CommandText {
        path: "role",
        use_line: "role <subcommand>",
        short: "Role related commands",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "role add",
        use_line: "add <role name>",
        short: "Adds a new role",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "role delete",
        use_line: "delete <role name>",
        short: "Deletes a role",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "role get",
        use_line: "get <role name>",
        short: "Gets detailed information of a role",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "role grant-permission",
        use_line: "grant-permission [options] <role name> <permission type> <key> [endkey]",
        short: "Grants a key to a role",
        long: "",
        flags: &[
            FlagText::new("from-key", GoType::Bool, "grant a permission of keys that are greater than or equal to the given key using byte compare"),
            FlagText::new("prefix", GoType::Bool, "grant a prefix permission"),
        ],
    },
    CommandText {
        path: "role list",
        use_line: "list",
        short: "Lists all roles",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "role revoke-permission",
        use_line: "revoke-permission <role name> <key> [endkey]",
        short: "Revokes a key from a role",
        long: "",
        flags: &[
            FlagText::new("from-key", GoType::Bool, "revoke a permission of keys that are greater than or equal to the given key using byte compare"),
            FlagText::new("prefix", GoType::Bool, "revoke a prefix permission"),
        ],
    },
    CommandText {
        path: "snapshot",
        use_line: "snapshot <subcommand>",
        short: "Manages etcd node snapshots",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "snapshot restore",
        use_line: "restore <filename> [options]",
        short: "Restores an etcd member snapshot to an etcd directory",
        long: "",
        flags: &[
            FlagText::new("data-dir", GoType::String, "Path to the data directory"),
            FlagText::new("initial-advertise-peer-urls", GoType::String, "List of this member's peer URLs to advertise to the rest of the cluster"),
            FlagText::new("initial-cluster", GoType::String, "Initial cluster configuration for restore bootstrap"),
            FlagText::new("initial-cluster-token", GoType::String, "Initial cluster token for the etcd cluster during restore bootstrap"),
            FlagText::new("name", GoType::String, "Human-readable name for this member"),
            FlagText::new("skip-hash-check", GoType::Bool, "Ignore snapshot integrity hash value (required if copied from data directory)"),
            FlagText::new("wal-dir", GoType::String, "Path to the WAL directory (use --data-dir if none given)"),
        ],
    },
    CommandText {
        path: "snapshot save",
        use_line: "save <filename>",
        short: "Stores an etcd node backend snapshot to a given file",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "snapshot status",
        use_line: "status <filename>",
        short: "Gets backend snapshot status of a given file",
        long: "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.",
        flags: &[],
    },
    CommandText {
        path: "txn",
        use_line: "txn [options]",
        short: "Txn processes all the requests in one transaction",
        long: "",
        flags: &[
            FlagText::new("interactive", GoType::Bool, "Input transaction in interactive mode"),
        ],
    },
    CommandText {
        path: "user",
        use_line: "user <subcommand>",
        short: "User related commands",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "user add",
        use_line: "add <user name or user:password> [options]",
        short: "Adds a new user",
        long: "",
        flags: &[
            FlagText::new("interactive", GoType::Bool, "Read password from stdin instead of interactive terminal"),
            FlagText::new("new-user-password", GoType::String, "Supply password from the command line flag"),
            FlagText::new("no-password", GoType::Bool, "Create a user without password (CN based auth only)"),
        ],
    },
    CommandText {
        path: "user delete",
        use_line: "delete <user name>",
        short: "Deletes a user",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "user get",
        use_line: "get <user name> [options]",
        short: "Gets detailed information of a user",
        long: "",
        flags: &[
            FlagText::new("detail", GoType::Bool, "Show permissions of roles granted to the user"),
        ],
    },
    CommandText {
        path: "user grant-role",
        use_line: "grant-role <user name> <role name>",
        short: "Grants a role to a user",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "user list",
        use_line: "list",
        short: "Lists all users",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "user passwd",
        use_line: "passwd <user name> [options]",
        short: "Changes password of user",
        long: "",
        flags: &[
            FlagText::new("interactive", GoType::Bool, "If true, read password from stdin instead of interactive terminal"),
        ],
    },
    CommandText {
        path: "user revoke-role",
        use_line: "revoke-role <user name> <role name>",
        short: "Revokes a role from a user",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "version",
        use_line: "version",
        short: "Prints the version of etcdctl",
        long: "",
        flags: &[],
    },
    CommandText {
        path: "watch",
        use_line: "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        short: "Watches events stream on keys or prefixes",
        long: "",
        flags: &[
            FlagText::new("interactive", GoType::Bool, "Interactive mode"),
            FlagText::new("prefix", GoType::Bool, "Watch on a prefix if prefix is set"),
            FlagText::new("prev-kv", GoType::Bool, "get the previous key-value pair before the event happens"),
            FlagText::new("rev", GoType::Int, "Revision to start watching"),
        ],
    },
];
