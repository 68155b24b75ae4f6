use ibyok_tests::{Env, Req};
use serde_json::json;

#[tokio::test]
async fn submit_then_read_live_through_moto() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "OpenAI Production", "openai", "sk-live-abcdef123456").await;
    let r = env.read(&env.root, &key, "production").await.expect(200);
    assert_eq!(r.body["value"], "sk-live-abcdef123456");
    assert_eq!(
        r.body["modeInfo"],
        json!({"environment": "production", "effectiveMode": "live", "source": "tenant_setting"})
    );
    let _ = Req::get("/keys");
}
