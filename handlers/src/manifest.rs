//! What each function needs from its deployment: the single source of truth
//! for the table schema, the environment variables and the IAM actions.
//!
//! The integration harness creates its tables from [`TABLES`]; the Terraform
//! checks compare the modules against this file; the handler tests record the
//! store calls each function makes and check them against [`Function::dynamodb`]
//! (see `docs/contracts.md`).

/// A DynamoDB table as the code uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Role of the table (`connections` or `pending`), also its Terraform key.
    pub role: &'static str,
    /// The environment variable that names it.
    pub env: &'static str,
    pub hash_key: &'static str,
    pub ttl_attribute: &'static str,
    pub indexes: &'static [Index],
}

/// A global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub hash_key: &'static str,
    /// `KEYS_ONLY`, `INCLUDE` or `ALL`.
    pub projection: &'static str,
}

pub const CONNECTIONS: Table = Table {
    role: "connections",
    env: "CONNECTIONS_TABLE_NAME",
    hash_key: "connectionId",
    ttl_attribute: "ttl",
    indexes: &[],
};

pub const PENDING_REQUESTS: Table = Table {
    role: "pending",
    env: "PENDING_REQUESTS_TABLE_NAME",
    hash_key: "requestId",
    ttl_attribute: "ttl",
    indexes: &[PENDING_BY_CONNECTION],
};

/// Pending requests of one connection: disconnect fails them at once.
pub const PENDING_BY_CONNECTION: Index = Index {
    name: "connectionId-index",
    hash_key: "connectionId",
    projection: "KEYS_ONLY",
};

pub const TABLES: &[Table] = &[CONNECTIONS, PENDING_REQUESTS];

/// A DynamoDB action on a table (or, with `index`, on one of its indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DynamoDbAction {
    pub table: &'static str,
    pub index: Option<&'static str>,
    /// The IAM action without its `dynamodb:` prefix, e.g. `PutItem`.
    pub action: &'static str,
}

const fn on(table: &'static str, action: &'static str) -> DynamoDbAction {
    DynamoDbAction {
        table,
        index: None,
        action,
    }
}

/// One Lambda function: the binary, what it reads and what it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The binary name under `src/bin/`, also the Terraform function key.
    pub name: &'static str,
    /// The route(s) that invoke it.
    pub routes: &'static [&'static str],
    pub required_env: &'static [&'static str],
    pub optional_env: &'static [&'static str],
    pub dynamodb: &'static [DynamoDbAction],
    /// The `@connections` calls it makes, by the HTTP method its IAM
    /// resource names (`execute-api:ManageConnections` on
    /// `{api}/{stage}/{METHOD}/@connections/*`): [`POST_TO_CONNECTION`],
    /// [`GET_CONNECTION`].
    pub manage_connections: &'static [&'static str],
    /// Whether it reads the auth secret from the SSM parameter named by
    /// `AUTH_SECRET_PARAMETER` (`ssm:GetParameter` on that parameter, and
    /// `kms:Decrypt` through SSM for a SecureString).
    pub reads_auth_secret: bool,
}

/// PostToConnection, as its IAM resource names it.
pub const POST_TO_CONNECTION: &str = "POST";
/// GetConnection, as its IAM resource names it.
pub const GET_CONNECTION: &str = "GET";

/// Read by every function.
pub const COMMON_OPTIONAL_ENV: &[&str] = &["LOG_FORMAT", "RUST_LOG"];

pub const CONNECT: Function = Function {
    name: "connect",
    routes: &["$connect"],
    required_env: &["CONNECTIONS_TABLE_NAME", "DOMAIN_NAME"],
    optional_env: &[
        "PUBLIC_URL_TEMPLATE",
        "AUTH_MODE",
        "AUTH_SECRET",
        "AUTH_SECRET_PARAMETER",
        "AUTH_SECRET_REFRESH_SECONDS",
    ],
    // PutItem: new claims and the connection; UpdateItem: resume a claim,
    // release it when the connection cannot be stored.
    dynamodb: &[
        on("connections", "PutItem"),
        on("connections", "UpdateItem"),
    ],
    manage_connections: &[],
    reads_auth_secret: true,
};

pub const DISCONNECT: Function = Function {
    name: "disconnect",
    routes: &["$disconnect"],
    required_env: &["CONNECTIONS_TABLE_NAME", "PENDING_REQUESTS_TABLE_NAME"],
    optional_env: &[],
    dynamodb: &[
        on("connections", "GetItem"),
        on("connections", "UpdateItem"),
        on("connections", "DeleteItem"),
        DynamoDbAction {
            table: "pending",
            index: Some(PENDING_BY_CONNECTION.name),
            action: "Query",
        },
        on("pending", "UpdateItem"),
    ],
    manage_connections: &[],
    reads_auth_secret: false,
};

pub const FORWARDING: Function = Function {
    name: "forwarding",
    routes: &["$default"],
    required_env: &[
        "CONNECTIONS_TABLE_NAME",
        "PENDING_REQUESTS_TABLE_NAME",
        "DOMAIN_NAME",
        // `host` or `path` (`crate::config::Routing`).
        "ROUTING",
        "WEBSOCKET_API_ENDPOINT",
    ],
    optional_env: &["REQUEST_TIMEOUT_MS", "POLL_INTERVAL_MS"],
    dynamodb: &[
        on("connections", "GetItem"),
        on("connections", "UpdateItem"),
        on("connections", "DeleteItem"),
        on("pending", "PutItem"),
        on("pending", "GetItem"),
        on("pending", "DeleteItem"),
        // Response chunks (`crate::store::chunks`).
        on("pending", "BatchGetItem"),
    ],
    // GET: is a silent agent's connection still open (forwarding's wait)?
    manage_connections: &[POST_TO_CONNECTION, GET_CONNECTION],
    reads_auth_secret: false,
};

pub const RESPONSE: Function = Function {
    name: "response",
    routes: &["$default"],
    required_env: &[
        "CONNECTIONS_TABLE_NAME",
        "PENDING_REQUESTS_TABLE_NAME",
        "WEBSOCKET_API_ENDPOINT",
    ],
    optional_env: &["CONNECTION_MAX_AGE_SECONDS"],
    dynamodb: &[
        on("connections", "GetItem"),
        // Offer the successor resume token at `ready` (`crate::claims::offer`).
        on("connections", "UpdateItem"),
        on("pending", "UpdateItem"),
        // Response chunk items (`crate::store::chunks`); GetItem: the
        // ownership check before a chunk is written.
        on("pending", "PutItem"),
        on("pending", "GetItem"),
    ],
    manage_connections: &[POST_TO_CONNECTION],
    reads_auth_secret: false,
};

pub const FUNCTIONS: &[Function] = &[CONNECT, DISCONNECT, FORWARDING, RESPONSE];
