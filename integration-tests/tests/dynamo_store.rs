//! The store contract suite (`handlers::contract`) on the handlers' DynamoDB
//! stores (`handlers::store::dynamo`) against the harness's real DynamoDB
//! API (moto or LocalStack, see `ITEST_DYNAMODB`): the expressions, reserved
//! words, conditions and answer items do what the suite says,
//! which is what the in-memory fake the handlers' unit tests use does too.
//!
//! Every case creates the manifest's tables under its own prefix, so the
//! cases share one backend, run in parallel and in any order.

use aws_sdk_dynamodb::Client;
use handlers::contract;
use handlers::store::dynamo::{DynamoConnectionStore, DynamoPendingStore};
use itest::{DynamoDb, Tables};

/// Fresh tables on the shared backend, and stores on them.
struct Fixture {
    client: Client,
    tables: Tables,
}

impl Fixture {
    async fn new() -> anyhow::Result<Fixture> {
        let client = DynamoDb::shared().await?.client();
        let tables = Tables::create(&client, &Tables::unique_prefix()).await?;
        Ok(Fixture { client, tables })
    }

    fn connections(&self) -> DynamoConnectionStore {
        DynamoConnectionStore::new(
            self.client.clone(),
            self.tables.name(handlers::manifest::CONNECTIONS.role),
        )
    }

    fn pending(&self) -> DynamoPendingStore {
        DynamoPendingStore::new(
            self.client.clone(),
            self.tables.name(handlers::manifest::PENDING_REQUESTS.role),
        )
    }

    /// Best effort, for long-lived endpoints; a failing case leaves its tables.
    async fn delete(self) {
        self.tables.delete(&self.client).await;
    }
}

/// One test per case, on the store of the table it is about.
macro_rules! on_dynamodb {
    ($($store:ident: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let fx = Fixture::new().await?;
                contract::$case(&fx.$store()).await?;
                fx.delete().await;
                Ok(())
            }
        )*

        #[test]
        fn every_case_of_the_suite_runs() {
            assert_eq!([$(stringify!($case)),*], contract::CASES);
        }
    };
}

on_dynamodb! {
    connections: claims_and_resume_follow_their_conditions,
    connections: resume_tokens_stay_valid_until_their_successor_is_presented,
    connections: resuming_respects_the_user,
    connections: reserved_subdomains_go_back_only_to_their_user,
    connections: the_policy_lives_with_the_claim_until_release,
    connections: missing_claims_are_never_created,
    connections: connections_round_trip_and_delete_idempotently,
    pending: an_answer_is_written_once_per_connection,
    pending: an_answer_is_read_only_under_its_connection,
    pending: answers_keep_their_ttl_and_whole_response,
}
