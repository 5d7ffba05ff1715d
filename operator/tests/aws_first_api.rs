//! The first API of an account: "When you create an API, custom domain name, or VPC link …,
//! API Gateway creates the service-linked role for you" (Using service-linked roles for API
//! Gateway, "Creating a service-linked role"), with the caller's iam:CreateServiceLinkedRole.
//! The IAM gate emulates it; the operator's policy lacked the permission, so the first room of
//! a fresh account failed. A file of its own: no other test may make an API meanwhile.

mod aws_support;

use aws_support::{converge, provider, provider_as, room, sdk};

const SERVICE_LINKED_ROLE: &str = "AWSServiceRoleForAPIGateway";

#[tokio::test]
#[ignore = "needs moto behind the IAM gate; run through scripts/test.sh"]
async fn the_first_room_of_an_account_lets_api_gateway_make_its_service_linked_role() {
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    // A fresh account: earlier tests' first API made the role.
    let _ = iam
        .delete_role()
        .role_name(SERVICE_LINKED_ROLE)
        .send()
        .await;

    // The operator's policies as they were, without the permission.
    const KEY: &str = "AKIAPOLICYWITHOUTSERVICELINKEDROLE";
    aws_support::register_operator_without(KEY, "iam:CreateServiceLinkedRole");
    let mut lobby = room("firstapi");
    let refused = provider_as(KEY, b"bootstrap.zip v1")
        .await
        .converge(&lobby)
        .await;
    let failure = refused
        .failure()
        .expect("the first API needs iam:CreateServiceLinkedRole");
    assert_eq!(failure.reason, "AccessDeniedException", "{failure:?}");
    assert!(
        failure
            .message
            .contains("Caller does not have permissions to create a Service Linked Role."),
        "{failure:?}"
    );
    assert!(
        iam.get_role()
            .role_name(SERVICE_LINKED_ROLE)
            .send()
            .await
            .is_err(),
        "nothing made it"
    );

    // The shipped policies: the room converges, and the account now has the role.
    let operator = provider().await;
    converge(&operator, &mut lobby).await;
    let role = iam
        .get_role()
        .role_name(SERVICE_LINKED_ROLE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        role.role().unwrap().path(),
        "/aws-service-role/ops.apigateway.amazonaws.com/"
    );
    operator.delete(&lobby).await.unwrap();
}
