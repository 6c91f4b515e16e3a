//! failover-dashboard: the live web page of one failover group.
//!
//! - [`feed`]: samples the group at the failover service (and the endpoint's audit) every
//!   250 ms into snapshots and a plain-words event feed ([`narrate`]).
//! - [`router`]: serves the page (HTML, CSS and JavaScript written for this project and
//!   embedded in the binary), the snapshots as server-sent events at `/events`, and, when given
//!   an [`Actions`] implementation (the demo), `POST /api/action` for its buttons.
//!
//! - [`replay_router`]: the same page playing a recorded run back (`failover-lab replay`): the
//!   page makes its snapshots from the recording and adds its time controls.
//!
//! `failover-lab demo --dashboard` serves it with buttons that kill, pause, resume and restart
//! adapters, cut their source and change the mode; `failover-arbiter --dashboard-listen` serves
//! it without buttons (in docker compose).

pub mod feed;
pub mod narrate;

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

pub use feed::Feed;

const INDEX_HTML: &str = include_str!("../page/index.html");
const APP_JS: &str = include_str!("../page/app.js");
const STYLE_CSS: &str = include_str!("../page/style.css");

/// A button press from the page.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionRequest {
    /// kill, pause, resume, restart, cut_source, heal_source, or mode.
    pub action: String,
    /// The adapter's id, or "primary" / "secondary" for whoever has that role now.
    #[serde(default)]
    pub adapter: Option<String>,
    /// For `mode`: Hot, Warm or Cold.
    #[serde(default)]
    pub mode: Option<String>,
}

/// The answer to a button: what was done, or why not.
pub type ActionResult = Result<String, String>;

/// What the buttons do (the demo drives real processes).
pub trait Actions: Send + Sync + 'static {
    /// Carries out one button press.
    fn act(
        &self,
        request: ActionRequest,
    ) -> Pin<Box<dyn Future<Output = ActionResult> + Send + '_>>;
}

#[derive(Clone)]
struct Page {
    feed: Feed,
    actions: Option<Arc<dyn Actions>>,
}

/// The page, its assets, `/events` and (with `actions`) `/api/action`.
pub fn router(feed: Feed, actions: Option<Arc<dyn Actions>>) -> Router {
    let asset = |ctype: &'static str, body: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, ctype)], body) })
    };
    Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX_HTML))
        .route("/app.js", asset("text/javascript; charset=utf-8", APP_JS))
        .route("/style.css", asset("text/css; charset=utf-8", STYLE_CSS))
        .route("/events", get(events))
        .route("/api/action", post(action))
        .layer(axum::extract::DefaultBodyLimit::max(4096))
        .with_state(Page { feed, actions })
}

/// The page of a recorded run (`failover-lab replay`): the live page, told by its body's
/// `data-source="recording"` to read the recording at `/recording` (its header and items, as
/// JSON) instead of `/events`, and to play it back: play and pause, step from event to event,
/// scrub, change the speed. No `/api/action`: a recording cannot be acted on.
pub fn replay_router(recording: String) -> Router {
    let asset = |ctype: &'static str, body: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, ctype)], body) })
    };
    let index = Arc::new(INDEX_HTML.replacen("<body>", "<body data-source=\"recording\">", 1));
    let recording = Arc::new(recording);
    Router::new()
        .route(
            "/",
            get(move || {
                let index = index.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        index.as_str().to_string(),
                    )
                }
            }),
        )
        .route("/app.js", asset("text/javascript; charset=utf-8", APP_JS))
        .route("/style.css", asset("text/css; charset=utf-8", STYLE_CSS))
        .route(
            "/recording",
            get(move || {
                let recording = recording.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        recording.as_str().to_string(),
                    )
                }
            }),
        )
}

/// Serves the dashboard on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    feed: Feed,
    actions: Option<Arc<dyn Actions>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(feed, actions))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Serves the replay of a recording (`json`, as `failover-lab replay` reads it) on `listener`
/// until `shutdown` resolves.
pub async fn serve_replay(
    listener: tokio::net::TcpListener,
    json: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, replay_router(json))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn events(State(page): State<Page>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before taking the history, so no snapshot falls between the two.
    let ticks = BroadcastStream::new(page.feed.subscribe());
    let initial = page.feed.initial(page.actions.is_some());
    let first = Event::default()
        .event("initial")
        .data(serde_json::to_string(&initial).unwrap_or_default());
    let rest = ticks.map(|t| match t {
        Ok(json) => Event::default().event("snapshot").data(json.as_str()),
        // A page that fell behind reloads its history.
        Err(BroadcastStreamRecvError::Lagged(_)) => Event::default().event("lagged").data("{}"),
    });
    let stream = futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Refuses a request another web page could make: one without a JSON content type (a
/// cross-site form or `text/plain` POST needs no CORS preflight; `application/json` does, and
/// none is answered), or one whose `Origin` is not this dashboard's own.
fn same_origin_json(headers: &axum::http::HeaderMap) -> Result<(), (StatusCode, String)> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an action must be sent as Content-Type: application/json".into(),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or_default();
        let same = host
            .is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
        if !same {
            return Err((
                StatusCode::FORBIDDEN,
                "actions are taken only from this dashboard's own page (the Origin differs)".into(),
            ));
        }
    }
    Ok(())
}

async fn action(
    State(page): State<Page>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let error = |code: StatusCode, msg: String| {
        (code, Json(serde_json::json!({ "error": msg }))).into_response()
    };
    if let Err((code, msg)) = same_origin_json(&headers) {
        return error(code, msg);
    }
    let Some(actions) = page.actions else {
        return error(
            StatusCode::FORBIDDEN,
            "this dashboard only watches; buttons work under `failover-lab demo --dashboard`"
                .into(),
        );
    };
    let request: ActionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"action\": ..., \"adapter\": ..., \"mode\": ...}}: {e}"),
            );
        }
    };
    match actions.act(request).await {
        Ok(done) => {
            page.feed.say("action", done.clone());
            Json(serde_json::json!({ "done": done })).into_response()
        }
        Err(why) => {
            page.feed.say("error", why.clone());
            error(StatusCode::CONFLICT, why)
        }
    }
}
