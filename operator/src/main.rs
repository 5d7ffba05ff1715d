fn main() {
    print!(
        "{}",
        chatroom_operator::crd::crd_yaml().expect("CRD serializes")
    );
}
