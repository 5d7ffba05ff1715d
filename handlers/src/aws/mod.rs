//! The Lambda shell: the chat's store in DynamoDB, its sender over the API Gateway Management
//! API, and the function's configuration and entry point.

mod authorizer;
mod channel_store;
mod connections_api;
mod dynamodb_history;
mod dynamodb_store;
mod fanout;
mod fanout_marks;
mod fanout_worker;
mod function;
mod listing_cache;
mod management_sender;
mod versions;

pub use authorizer::{AuthorizerError, AuthorizerResponse, authorize, is_authorizer_event};
pub use connections_api::{ConnectionsApi, PostError};
pub use dynamodb_history::DynamoDbHistory;
pub use dynamodb_store::DynamoDbStore;
pub use fanout::{
    FANOUT_EVENT_KEY, FanoutPage, Workers, is_fanout_event, pages, worker_posts_per_second,
};
pub use fanout_worker::PartReport;
pub use function::{ConfigError, Function, FunctionConfig};
pub use management_sender::{ManagementApiSender, management_endpoint};
