//! The HTTP API: `POST /predict`, `GET /health`, `GET /metadata`; every error is
//! `{"error": "…"}` with its status.

use crate::engine::{Job, Queue, Refused};
use crate::info::RunInfo;
use crate::options::Limits;
use crate::request::{self, ApiError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What every handler shares.
pub struct App {
    pub queue: Queue,
    pub info: RunInfo,
    pub limits: Limits,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.limits.max_body_bytes;
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/metadata", get(metadata))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (POST /predict, GET /health, GET /metadata)") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let stats = &app.queue.stats;
    if !stats.running.load(Ordering::SeqCst) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the inference thread has stopped").into_response();
    }
    let mut v = json!({ "status": "ok" });
    v["stats"] = stats.to_json();
    Json(v).into_response()
}

async fn metadata(State(app): State<Arc<App>>) -> Json<Value> {
    let mut v = app.info.metadata.clone();
    v["stats"] = app.queue.stats.to_json();
    Json(v)
}

async fn predict(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {} bytes (--max-body-bytes)", app.limits.max_body_bytes))
        } else {
            ApiError::new(r.status(), format!("reading the body: {}", r.body_text()))
        }
    })?;
    let req = request::parse(&body, &app.limits)?;
    // Texts with nothing to classify are answered without the model.
    let keep: Vec<bool> = req.texts.iter().map(|t| !t.trim().is_empty()).collect();
    let bound = whetstone_data::truncate::char_bound(app.info.max_len);
    let truncated: Vec<bool> = req.texts.iter().map(|t| t.chars().nth(bound).is_some()).collect();
    let texts: Vec<String> = req.texts.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(t, _)| t).collect();
    let mut preds = if texts.is_empty() {
        Vec::new()
    } else {
        let (reply, answer) = oneshot::channel();
        app.queue.submit(Job { texts, reply }).map_err(|r| match r {
            Refused::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is at capacity: its request queue is full (--max-queue); retry later"),
            Refused::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the inference thread has stopped"),
        })?;
        let answer = answer.await.map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the inference thread stopped before answering"))?;
        answer.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
    }
    .into_iter();
    let answers: Vec<Value> = keep
        .iter()
        .zip(&truncated)
        .map(|(&k, &cut)| {
            let mut v = if k { preds.next().map_or(Value::Null, |p| p.to_json()) } else { app.info.empty.clone() };
            if cut {
                v["truncated"] = json!(true);
            }
            v
        })
        .collect();
    Ok(Json(if req.single { answers.into_iter().next().unwrap_or(Value::Null) } else { json!({ "predictions": answers }) }))
}
