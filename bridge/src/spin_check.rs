//! `bridge spin-check URL`: drives a running deployment through a fixed
//! scenario over HTTP and reports each step.
//!
//! The embedded host reproduces what a function observes on Spin, but the
//! only proof that a deployment works is to use it. The scenario covers
//! what has broken on real Spin releases before: registration and its
//! duplicate (a unique violation raised while rows stream back), logging
//! in as nobody and reading an unknown user's metrics (statements that
//! match no rows, which hang Spin 4.0.0–4.0.2 unless kit wraps them),
//! refresh-token rotation and reuse detection, and events travelling from
//! the outbox through the relay into analytics and notifications.
//!
//! Each step is timed; a step fails when its answer is wrong or when it
//! takes longer than the limit (5 s by default), so a hang shows up as a
//! failure rather than as a check that never ends. Steps that wait for
//! events poll until the condition holds or the limit passes.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The outcome of one step.
#[derive(Debug, Clone)]
pub struct Step {
    /// What the step does.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// The last HTTP status seen, if any.
    pub status: Option<u16>,
    /// How long it took.
    pub elapsed: Duration,
    /// Why it failed (or a short note).
    pub detail: String,
}

/// Every step, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The steps run (the scenario stops at the first step later steps
    /// depend on).
    pub steps: Vec<Step>,
}

impl Report {
    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let status = s.status.map_or_else(|| "---".to_owned(), |c| c.to_string());
            writeln!(
                f,
                "{} {:<44} {status} {:>8.1} ms  {}",
                if s.ok { "ok  " } else { "FAIL" },
                s.name,
                s.elapsed.as_secs_f64() * 1000.0,
                s.detail
            )?;
        }
        let failed = self.steps.iter().filter(|s| !s.ok).count();
        writeln!(f, "{} passed, {failed} failed", self.steps.len() - failed)
    }
}

/// An HTTP answer, read whole.
struct Answer {
    status: u16,
    body: Value,
}

/// Why a step failed.
type Failure = (Option<u16>, String);

/// Talks to the deployment.
struct Client {
    base: String,
    http: reqwest::Client,
    limit: Duration,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| (None, describe(&e)))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| (Some(status), describe(&e)))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<Answer, Failure> {
        self.send(reqwest::Method::GET, path, None, token).await
    }

    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Answer, Failure> {
        self.send(reqwest::Method::POST, path, Some(body), token)
            .await
    }

    /// Presents a refresh token.
    async fn refresh(&self, token: &str) -> Result<Answer, Failure> {
        self.post("/auth/refresh", &json!({ "refresh_token": token }), None)
            .await
    }

    /// Sends until `check` accepts an answer or the step limit passes.
    async fn poll<F>(&self, path: &str, token: Option<&str>, check: F) -> Result<Answer, Failure>
    where
        F: Fn(&Answer) -> bool,
    {
        let deadline = Instant::now() + self.limit;
        loop {
            let answer = self.get(path, token).await?;
            if check(&answer) {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                return Err((
                    Some(answer.status),
                    format!("not within {:?}; last answer {}", self.limit, answer.body),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "no answer before the step limit (a hung request?)".to_owned()
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    }
}

/// Checks `answer` has `status`.
fn expect(answer: &Answer, status: u16) -> Result<(), Failure> {
    if answer.status == status {
        Ok(())
    } else {
        Err((
            Some(answer.status),
            format!("expected {status}, got {}: {}", answer.status, answer.body),
        ))
    }
}

/// A string field of a JSON answer.
fn field(answer: &Answer, name: &str) -> Result<String, Failure> {
    answer.body[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            (
                Some(answer.status),
                format!("no {name:?} in {}", answer.body),
            )
        })
}

/// Runs one step, recording its outcome and time; `None` if it failed.
async fn step<T, Fut>(
    report: &mut Report,
    limit: Duration,
    name: &'static str,
    run: Fut,
) -> Option<T>
where
    Fut: Future<Output = Result<(T, u16), Failure>>,
{
    let started = Instant::now();
    let outcome = run.await;
    let elapsed = started.elapsed();
    let (ok, status, detail, value) = match outcome {
        Ok((value, status)) if elapsed <= limit => (true, Some(status), String::new(), Some(value)),
        Ok((_, status)) => (
            false,
            Some(status),
            format!("slower than the {limit:?} limit"),
            None,
        ),
        Err((status, detail)) => (false, status, detail, None),
    };
    report.steps.push(Step {
        name,
        ok,
        status,
        elapsed,
        detail,
    });
    value
}

/// Runs the scenario against `base_url`; every step must finish within
/// `limit`.
pub async fn run(base_url: &str, limit: Duration) -> Report {
    let mut report = Report::default();
    let http = match reqwest::Client::builder()
        // A request the host never answers fails its step shortly after
        // the limit instead of hanging the check.
        .timeout(limit + Duration::from_secs(1))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            report.steps.push(Step {
                name: "build an HTTP client",
                ok: false,
                status: None,
                elapsed: Duration::ZERO,
                detail: describe(&e),
            });
            return report;
        }
    };
    let c = Client {
        base: base_url.trim_end_matches('/').to_owned(),
        http,
        limit,
    };
    scenario(&c, &mut report).await;
    report
}

async fn scenario(c: &Client, report: &mut Report) {
    let limit = c.limit;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("spin-check-{tag}@example.com");
    let username = format!("check{}", &tag[..12]);
    let password = "spin-check correct horse";

    let health = step(report, limit, "GET /auth/health", async {
        let a = c.get("/auth/health?deep=1", None).await?;
        expect(&a, 200)?;
        Ok(((), a.status))
    });
    if health.await.is_none() {
        return;
    }

    let registered = step(report, limit, "register a new user (201)", async {
        let body = json!({"email": email, "password": password, "username": username});
        let a = c.post("/auth/register", &body, None).await?;
        expect(&a, 201)?;
        Ok((field(&a, "id")?, a.status))
    });
    let Some(user_id) = registered.await else {
        return;
    };

    step(
        report,
        limit,
        "register the same email again (409)",
        async {
            let body = json!({"email": email, "password": password});
            let a = c.post("/auth/register", &body, None).await?;
            expect(&a, 409)?;
            Ok(((), a.status))
        },
    )
    .await;

    step(report, limit, "log in as an unknown user (401)", async {
        let body = json!({"email": format!("nobody-{tag}@example.com"), "password": password});
        let a = c.post("/auth/login", &body, None).await?;
        expect(&a, 401)?;
        Ok(((), a.status))
    })
    .await;

    let login = step(report, limit, "log in (200, token pair)", async {
        let body = json!({"email": email, "password": password});
        let a = c.post("/auth/login", &body, None).await?;
        expect(&a, 200)?;
        Ok((
            (field(&a, "access_token")?, field(&a, "refresh_token")?),
            a.status,
        ))
    });
    let Some((access, first_refresh)) = login.await else {
        return;
    };

    step(report, limit, "GET /auth/me with the access token", async {
        let a = c.get("/auth/me", Some(&access)).await?;
        expect(&a, 200)?;
        if field(&a, "email")? != email {
            return Err((
                Some(a.status),
                format!("me is not the new user: {}", a.body),
            ));
        }
        Ok(((), a.status))
    })
    .await;

    let rotated = step(report, limit, "refresh (rotates the token)", async {
        let a = c.refresh(&first_refresh).await?;
        expect(&a, 200)?;
        Ok((field(&a, "refresh_token")?, a.status))
    })
    .await;

    step(
        report,
        limit,
        "present the spent refresh token (401)",
        async {
            let a = c.refresh(&first_refresh).await?;
            expect(&a, 401)?;
            Ok(((), a.status))
        },
    )
    .await;

    if let Some(successor) = rotated {
        step(report, limit, "reuse revoked the family (401)", async {
            let a = c.refresh(&successor).await?;
            expect(&a, 401)?;
            Ok(((), a.status))
        })
        .await;
    }

    step(report, limit, "metrics of an unknown user (empty)", async {
        let a = c
            .get(&format!("/metrics/user/nobody-{tag}/actions"), None)
            .await?;
        expect(&a, 200)?;
        if a.body["actions"] != json!({}) {
            return Err((Some(a.status), format!("expected no actions: {}", a.body)));
        }
        Ok(((), a.status))
    })
    .await;

    step(
        report,
        limit,
        "events reach analytics (register, login)",
        async {
            let path = format!("/metrics/user/{user_id}/actions");
            let a = c
                .poll(&path, None, |a| {
                    a.status == 200
                        && a.body["actions"]["register"].as_i64() >= Some(1)
                        && a.body["actions"]["login"].as_i64() >= Some(1)
                })
                .await?;
            Ok(((), a.status))
        },
    )
    .await;

    step(report, limit, "the welcome notification arrives", async {
        let a = c
            .poll("/notifications", Some(&access), |a| {
                a.status == 200
                    && a.body.as_array().is_some_and(|list| {
                        list.iter()
                            .any(|n| n["message"].as_str() == Some(&format!("Welcome, {email}!")))
                    })
            })
            .await?;
        Ok(((), a.status))
    })
    .await;

    step(report, limit, "POST /notify (log channel)", async {
        let body = json!({"user_id": user_id, "channel": "log", "message": "spin-check"});
        let a = c.post("/notify", &body, None).await?;
        expect(&a, 200)?;
        if a.body["status"] != "sent" {
            return Err((Some(a.status), format!("not sent: {}", a.body)));
        }
        Ok(((), a.status))
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_passes_only_when_every_step_did() {
        let step = |ok| Step {
            name: "x",
            ok,
            status: Some(200),
            elapsed: Duration::from_millis(3),
            detail: String::new(),
        };
        assert!(!Report::default().passed());
        let mut report = Report {
            steps: vec![step(true), step(true)],
        };
        assert!(report.passed());
        report.steps.push(step(false));
        assert!(!report.passed());
        let text = report.to_string();
        assert!(text.ends_with("2 passed, 1 failed\n"), "{text}");
        assert!(text.contains("FAIL"), "{text}");
    }

    #[tokio::test]
    async fn a_slow_step_fails() {
        let mut report = Report::default();
        let value = step(&mut report, Duration::from_millis(1), "slow", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(((), 200))
        })
        .await;
        assert!(value.is_none());
        assert!(!report.steps[0].ok);
        assert!(
            report.steps[0].detail.contains("slower"),
            "{:?}",
            report.steps[0]
        );
    }
}
