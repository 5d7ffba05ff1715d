//! Command-line interface. Every flag can also be set from its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::gateway::{Limits, ManagementKeys, PublicUrl};
use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "chatroom-operator",
    version,
    about = "Turns ChatRoom resources into real-time WebSocket chat rooms"
)]
pub struct Cli {
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the ChatRoom CustomResourceDefinition as YAML.
    Crd,
    /// Serve ChatRoom files on the embedded gateway until interrupted: no AWS, no cluster.
    Local(LocalArgs),
    /// Converge ChatRoom files on AWS once, print each room with its status, exit 0 when all
    /// are Ready.
    Apply(ApplyArgs),
    /// Tear down what `apply` made for ChatRoom files.
    Delete(DeleteArgs),
    /// Run the Kubernetes controller: reconcile ChatRooms from the cluster.
    // Boxed: by far the largest set of flags.
    Run(Box<RunArgs>),
    /// A token issuer on loopback for trying rooms with spec.auth.jwt offline: serves its key
    /// set and prints tokens. For development only, never production.
    DevIssuer(DevIssuerArgs),
    /// Print the operator's IAM policies for one cluster (docs/iam-policy*.json are the ones
    /// for the cluster `default` in `aws`): a JSON object of policy name → document, or one
    /// document with --document.
    IamPolicy(IamPolicyArgs),
}

#[derive(Args, Debug)]
pub struct IamPolicyArgs {
    /// The cluster the operator runs for, as `run`/`apply` take it: every grant AWS evaluates
    /// on tags names it.
    #[arg(long, env = "CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,
    /// The AWS partition: aws, aws-cn or aws-us-gov.
    #[arg(long, default_value = "aws")]
    pub partition: String,
    /// Print only this policy's document (for `aws iam create-policy --policy-document`).
    #[arg(long)]
    pub document: Option<String>,
}

#[derive(Args, Debug)]
pub struct DevIssuerArgs {
    /// Where it serves /jwks.json and /token?name=…: a loopback address only.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Print a token for this name (repeat for more).
    #[arg(long, default_values_t = ["ada".to_owned(), "bob".to_owned()])]
    pub name: Vec<String>,
    /// The tokens' audience (`aud`).
    #[arg(long, default_value = "chat")]
    pub audience: String,
    /// How long a token is valid.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub valid_for: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Rooms on AWS: API Gateway, Lambda, DynamoDB, IAM.
    Aws,
    /// Rooms served by the operator pod itself on --gateway-listen.
    Local,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, env = "PROVIDER", value_enum, default_value = "aws")]
    pub provider: ProviderKind,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Only this namespace's ChatRooms (default: every namespace).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Serves /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// How often a Ready room is checked for drift.
    #[arg(long, env = "RESYNC", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,
    /// Reconcile only while holding the Lease `chatroom-operator` in the operator's namespace,
    /// so that replicas never act on the same room at once.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// Where the leader-election Lease lives (default: the pod's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long the Lease lasts unrenewed: a standby takes over at most this long after the
    /// leader stops or dies (whole seconds, at least 3s).
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = crate::election::parse_lease_duration)]
    pub lease_duration: Duration,
    /// After SIGTERM, how long in-flight reconciles may run before the process exits anyway;
    /// keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// With --provider local: where the operator serves the rooms to clients.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8081")]
    pub gateway_listen: SocketAddr,
    /// With --provider local: the URL clients reach the gateway at (a Service or Ingress):
    /// ws(s):// or http(s)://.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<PublicUrl>,
    /// With --provider local: where the @connections management API listens, apart from the
    /// clients (a ClusterIP-only Service port).
    #[arg(long, env = "MANAGEMENT_LISTEN", default_value = "0.0.0.0:8082")]
    pub management_listen: SocketAddr,
    #[command(flatten)]
    pub management: ManagementArgs,
    /// With --provider local: serve the management API without SigV4 keys. Anyone who can
    /// reach its port can then post to, inspect and disconnect every client.
    #[arg(long, env = "INSECURE_MANAGEMENT_API")]
    pub insecure_management_api: bool,
    /// With --provider local: `GET /` on the clients' port lists every room of every
    /// namespace.
    #[arg(long, env = "ROOM_INDEX")]
    pub room_index: bool,
    /// With --provider local: let rooms' backends be at link-local, private and other
    /// cluster-internal addresses. Without it a room's author cannot make the operator call
    /// the cloud's metadata service or the cluster's own Services.
    #[arg(long, env = "BACKEND_ALLOW_INTERNAL_ADDRESSES")]
    pub backend_allow_internal_addresses: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Where rooms' `spec.backend.secretRef` keys are, laid out as Kubernetes mounts a Secret:
    /// `DIR/{namespace}/{secret name}/{key}` (a trailing newline is not part of the key).
    #[arg(long, env = "SECRETS_DIR", value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Give up on rooms not Ready after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// The AWS provider's settings. Credentials, region and endpoint come from the AWS SDK's
/// default chain (`AWS_REGION`, `AWS_PROFILE`, IRSA, `AWS_ENDPOINT_URL`, …).
#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// The room function's bootstrap.zip for x86_64 (scripts/build-lambda.sh).
    #[arg(long, env = "HANDLER_ZIP")]
    pub handler_zip: Option<PathBuf>,
    /// A bootstrap.zip for rooms with `spec.function.architecture: arm64`.
    #[arg(long, env = "HANDLER_ZIP_ARM64")]
    pub handler_zip_arm64: Option<PathBuf>,
    /// Tagged on every resource, so operators of different clusters never take each other's;
    /// the operator's IAM policy names it (`chatroom-operator iam-policy --cluster-name`).
    #[arg(long, env = "CLUSTER_NAME", default_value = "default", value_parser = cluster_name)]
    pub cluster_name: String,
    /// Permissions boundary ARN for the IAM roles the operator creates (default: the policy
    /// chatroom-room-boundary in the operator's own account, as docs/iam-policy.json demands).
    #[arg(long, env = "PERMISSIONS_BOUNDARY")]
    pub permissions_boundary: Option<String>,
    /// Roles a room may bring in spec.function.roleArn, as ARN patterns (`*`, `?`); the
    /// operator's iam:PassRole permission must cover them too.
    #[arg(long, env = "ALLOWED_ROLE_ARNS", value_delimiter = ',', default_value = crate::providers::aws::DEFAULT_ALLOWED_ROLE_ARNS)]
    pub allowed_role_arns: Vec<String>,
    /// Requests per second the operator may send one AWS service, as SERVICE=RATE (services:
    /// apigateway, apigateway-domains, dynamodb, iam, lambda, logs, sts); repeat for several.
    /// Defaults: about half of AWS's control-plane quotas (apigateway=5, dynamodb=10, iam=5,
    /// lambda=10, logs=3, sts=5), leaving the rest to the account's other users; custom-domain
    /// creates, updates and deletes one per 31 s, inside AWS's one per 30 s
    /// (apigateway-domains=0.0323).
    #[arg(
        long = "aws-rate-limit",
        env = "AWS_RATE_LIMITS",
        value_delimiter = ',',
        value_name = "SERVICE=RATE"
    )]
    pub aws_rate_limits: Vec<crate::providers::aws::RateLimit>,
}

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// ChatRoom YAML files (several documents per file allowed).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Address the gateway serves clients on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// URL clients reach the gateway at, when a proxy stands in front of it: ws(s):// or
    /// http(s)://.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<PublicUrl>,
    /// Address the @connections management API listens on, apart from the clients.
    #[arg(long, env = "MANAGEMENT_LISTEN", default_value = "127.0.0.1:8081")]
    pub management_listen: SocketAddr,
    #[command(flatten)]
    pub management: ManagementArgs,
    /// Where rooms' `spec.backend.secretRef` keys are, laid out as Kubernetes mounts a Secret:
    /// `DIR/{namespace}/{secret name}/{key}` (a trailing newline is not part of the key).
    #[arg(long, env = "SECRETS_DIR", value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The management API's address as back ends see it, and the keys it checks.
#[derive(Args, Debug, Clone)]
pub struct ManagementArgs {
    /// URL back ends reach the management API at (status's callbackUrl starts with it):
    /// http(s):// or ws(s)://; default: the management listener's own address.
    #[arg(long, env = "MANAGEMENT_URL")]
    pub management_url: Option<PublicUrl>,
    /// With --management-secret-access-key: the only key pair whose SigV4 signatures the
    /// management API accepts, as API Gateway accepts IAM-signed @connections calls.
    #[arg(
        long,
        env = "MANAGEMENT_ACCESS_KEY_ID",
        requires = "management_secret_access_key"
    )]
    pub management_access_key_id: Option<String>,
    #[arg(
        long,
        env = "MANAGEMENT_SECRET_ACCESS_KEY",
        requires = "management_access_key_id",
        hide_env_values = true
    )]
    pub management_secret_access_key: Option<String>,
}

impl ManagementArgs {
    pub fn keys(&self) -> Option<ManagementKeys> {
        match (
            &self.management_access_key_id,
            &self.management_secret_access_key,
        ) {
            (Some(id), Some(secret)) => Some(ManagementKeys {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            }),
            _ => None,
        }
    }
}

/// API Gateway's WebSocket quotas and throttling (the defaults are AWS's), and the gateway's
/// own bounds in bytes and time.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Largest message in bytes, fragments reassembled; larger closes with 1009.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 128 * 1024)]
    pub max_message_bytes: usize,
    /// Largest frame in bytes; larger closes with 1009, larger outgoing messages are split.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 32 * 1024)]
    pub max_frame_bytes: usize,
    /// Close a connection after this long without a frame from its client (1001).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close every connection after this long (1001).
    #[arg(long, env = "MAX_CONNECTION_DURATION", default_value = "2h", value_parser = humantime::parse_duration)]
    pub max_connection_duration: Duration,
    /// Frames queued for one client before it counts as not reading and is closed (1008).
    #[arg(long, env = "OUTBOUND_QUEUE_FRAMES", default_value_t = 1024)]
    pub outbound_queue_frames: usize,
    /// Bytes queued for one client, pongs included, before it counts as not reading and is
    /// closed (1008).
    #[arg(long, env = "OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_queue_bytes: usize,
    /// Bytes the gateway may hold for its clients (a reserve per connection plus every
    /// queued byte); past it new connections get 503. Keep it below the memory limit.
    #[arg(long, env = "MEMORY_BUDGET_BYTES", default_value_t = 192 * 1024 * 1024)]
    pub memory_budget_bytes: usize,
    /// How long a client may take to send an HTTP request head (and a management request
    /// its body).
    #[arg(long, env = "HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// New WebSocket connections per second across the gateway; more get 429.
    #[arg(long, env = "NEW_CONNECTIONS_PER_SECOND", default_value_t = 500)]
    pub new_connections_per_second: u32,
    /// Messages (and $connects) per second across every room; more get API Gateway's
    /// "Too Many Requests" frame.
    #[arg(long, env = "ACCOUNT_RATE_LIMIT", default_value_t = 10_000.0)]
    pub account_rate_limit: f64,
    /// How many of them may come at once above the rate.
    #[arg(long, env = "ACCOUNT_BURST_LIMIT", default_value_t = 5_000)]
    pub account_burst_limit: u32,
    /// Requests per second one connection may make on routes other than the message route
    /// (`who`, `history`, `$default`); more get "Too Many Requests".
    #[arg(long, env = "CONNECTION_QUERY_RATE", default_value_t = 10.0)]
    pub connection_query_rate: f64,
    /// How many of them may come at once above that rate.
    #[arg(long, env = "CONNECTION_QUERY_BURST", default_value_t = 20)]
    pub connection_query_burst: u32,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: self.idle_timeout,
            max_connection_duration: self.max_connection_duration,
            outbound_queue_frames: self.outbound_queue_frames,
            outbound_queue_bytes: self.outbound_queue_bytes,
            memory_budget_bytes: self.memory_budget_bytes,
            header_timeout: self.header_timeout,
            new_connections_per_second: self.new_connections_per_second,
            account_rate_limit: self.account_rate_limit,
            account_burst_limit: self.account_burst_limit,
            connection_query_rate: self.connection_query_rate,
            connection_query_burst: self.connection_query_burst,
        }
    }
}

/// A cluster name the operator's IAM policy can name (see `iam-policy`).
fn cluster_name(value: &str) -> Result<String, String> {
    crate::providers::aws::operator_policy::check_cluster_name(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_interface_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn limit_defaults_are_aws_defaults() {
        let cli = Cli::parse_from(["chatroom-operator", "local", "room.yaml"]);
        let Command::Local(args) = cli.command else {
            panic!("expected local")
        };
        assert_eq!(args.limits.limits(), Limits::default());
    }
}
