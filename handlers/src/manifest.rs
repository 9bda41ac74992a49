//! What each function needs from its deployment: the single source of truth
//! for the table schema, the bucket, the environment variables and the IAM
//! actions.
//!
//! The integration harness creates its tables from [`TABLES`] and its
//! bucket from [`BUCKETS`]; the Terraform
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
    // No index: an index is one more write for every item written.
    indexes: &[],
};

pub const TABLES: &[Table] = &[CONNECTIONS, PENDING_REQUESTS];

/// An S3 bucket as the code uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Role of the bucket (`bodies`), also its Terraform module's name.
    pub role: &'static str,
    /// The environment variable that names it.
    pub env: &'static str,
    /// The lifecycle rule deletes an object this many days after it was
    /// written (S3's shortest): what a crashed invocation leaves behind.
    pub expiration_days: u32,
}

/// Request and answer bodies too large for a WebSocket message
/// (`docs/contracts.md`, "The data path"): objects live seconds.
pub const BODIES: Bucket = Bucket {
    role: "bodies",
    env: "BODIES_BUCKET_NAME",
    expiration_days: 1,
};

pub const BUCKETS: &[Bucket] = &[BODIES];

/// An S3 action on the objects of a bucket (`arn:…:bucket/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Action {
    /// The bucket's role.
    pub bucket: &'static str,
    /// The IAM action without its `s3:` prefix, e.g. `GetObject`.
    pub action: &'static str,
}

const fn objects(bucket: &'static str, action: &'static str) -> S3Action {
    S3Action { bucket, action }
}

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
    /// What it does with the objects of a bucket. A presigned URL acts with
    /// its signer's permissions, so this is also what the URLs it hands out
    /// may do.
    pub s3: &'static [S3Action],
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
    s3: &[],
    manage_connections: &[],
    reads_auth_secret: true,
};

pub const DISCONNECT: Function = Function {
    name: "disconnect",
    routes: &["$disconnect"],
    required_env: &["CONNECTIONS_TABLE_NAME"],
    optional_env: &[],
    dynamodb: &[
        on("connections", "GetItem"),
        on("connections", "UpdateItem"),
        on("connections", "DeleteItem"),
    ],
    s3: &[],
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
        "BODIES_BUCKET_NAME",
    ],
    optional_env: &["REQUEST_TIMEOUT_MS", "POLL_INTERVAL_MS"],
    dynamodb: &[
        on("connections", "GetItem"),
        on("connections", "UpdateItem"),
        on("connections", "DeleteItem"),
        // Polling for the answer; forwarding writes nothing to this table.
        on("pending", "GetItem"),
    ],
    // PutObject: a large request body, and the agent's presigned PUT of a
    // large answer; GetObject: the answer read back, and the agent's
    // presigned GET of the request body; DeleteObject: both, once used.
    s3: &[
        objects("bodies", "PutObject"),
        objects("bodies", "GetObject"),
        objects("bodies", "DeleteObject"),
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
        // The answer item, written once (`crate::store::pending`).
        on("pending", "PutItem"),
    ],
    s3: &[],
    manage_connections: &[POST_TO_CONNECTION],
    reads_auth_secret: false,
};

pub const FUNCTIONS: &[Function] = &[CONNECT, DISCONNECT, FORWARDING, RESPONSE];
