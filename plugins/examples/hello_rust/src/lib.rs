//! hello_rust: a foxworker plugin in Rust.
//!
//! Handlers, by message type:
//! - "greet": the payload is a name. Logs "<greeting>, <name>!" and acks;
//!   an empty payload is rejected, since retrying it cannot help.
//! - "flaky": retries, asking for `retry_delay`, until the attempt reaches
//!   `succeed_on`; then acks.
//! - "panic": panics with the payload as the message. The SDK catches it and
//!   the message is retried with the reason "panic: <payload>".
use foxworker_plugin::{foxworker_plugin, Config, Context, Message, Metric, Plugin, Verdict};
use std::time::Duration;

struct Hello {
    ctx: Context,
    greeting: String,
    shout: bool,
    excitement: f64,
    retry_delay: Duration,
    succeed_on: i64,
    friends: Vec<String>,
    titles: Vec<(String, String)>,
    greeted: Metric,
}

impl Plugin for Hello {
    // Control thread, once per instance. Keys without a default read as None.
    fn create(ctx: &Context, config: &Config) -> Result<Self, String> {
        let hello = Hello {
            ctx: *ctx,
            greeting: config.string("greeting")?.unwrap_or_default(),
            shout: config.bool("shout")?.unwrap_or(false),
            excitement: config.double("excitement")?.unwrap_or(1.0),
            retry_delay: config.duration("retry_delay")?.unwrap_or_default(),
            succeed_on: config.int("succeed_on")?.unwrap_or(1),
            friends: config.list("friends")?.unwrap_or_default(),
            titles: config.map("titles")?.unwrap_or_default(),
            greeted: ctx.counter("greetings_total", "People greeted")?,
        };
        if hello.excitement < 0.0 {
            return Err("config key \"excitement\": must not be negative".to_string());
        }
        ctx.debug(&format!(
            "ready: greeting={} shout={} excitement={} retry_delay={}ms succeed_on={} friends={:?} titles={:?}",
            hello.greeting,
            hello.shout,
            hello.excitement,
            hello.retry_delay.as_millis(),
            hello.succeed_on,
            hello.friends,
            hello.titles
        ));
        Ok(hello)
    }
}

impl Hello {
    // PerSlot: never two messages at once on one instance, so `&mut self`.
    fn greet(&mut self, msg: &Message) -> Verdict {
        let name = match msg.payload_str() {
            Ok("") => return Verdict::reject("empty payload: expected a name"),
            Ok(name) => name,
            Err(_) => return Verdict::reject("payload is not UTF-8"),
        };
        let title = self
            .titles
            .iter()
            .find(|(who, _)| who == name)
            .map(|(_, title)| title.as_str());
        let mut line = match title {
            Some(title) => format!("{}, {} {}", self.greeting, title, name),
            None => format!("{}, {}", self.greeting, name),
        };
        line.push_str(&"!".repeat(self.excitement.round() as usize));
        if self.friends.iter().any(|friend| friend == name) {
            line.push_str(" Welcome back.");
        }
        if self.shout {
            line = line.to_uppercase();
        }
        self.ctx.info(&format!("{} (attempt {})", line, msg.attempt()));
        self.greeted.inc();
        Verdict::Ack
    }

    fn flaky(&mut self, msg: &Message) -> Verdict {
        if i64::from(msg.attempt()) >= self.succeed_on {
            return Verdict::Ack;
        }
        Verdict::retry_after(
            format!("not yet: attempt {} of {}", msg.attempt(), self.succeed_on),
            self.retry_delay,
        )
    }

    fn panic(&mut self, msg: &Message) -> Verdict {
        panic!("{}", String::from_utf8_lossy(msg.payload()));
    }
}

foxworker_plugin! {
    name: "hello_rust",
    version: "1.0.0",
    description: "Greets people (Rust example)",
    instance: Hello,
    model: PerSlot,
    config: [
        "greeting": String = "hello" => "How to greet",
        "shout": Bool = false => "Greet in capitals",
        "excitement": Double = 1.0 => "How many exclamation marks",
        "retry_delay": Duration = "1s" => "The delay a flaky message asks for",
        "succeed_on": Int = 3 => "The attempt on which a flaky message succeeds",
        "friends": StringList => "Names greeted as friends",
        "titles": Map => "Titles by name",
    ],
    handlers: [
        "greet" => Hello::greet,
        "flaky" => Hello::flaky,
        "panic" => Hello::panic,
    ],
}
