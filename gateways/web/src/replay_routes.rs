//! Replay over HTTP for a running server (admin token only): point-in-time state, diffs,
//! timelines, forensic questions, compliance reports, verification, bundles, and
//! retention/erasure through the engine.
//!
//! Reads use the replay library on the live journal (`engine.journal()`): readers never
//! see past the acknowledged head, so this is safe while the engine appends. One index
//! (snapshots of the folded state) is kept current by [`follow`], which builds it when
//! the router starts and then folds every event of the engine's committed feed into it,
//! so a query finds it at (or a few events behind) the head and never waits for a
//! rebuild; a query still folds whatever the feed has not delivered yet, so it answers
//! as of the journal's head. Purges drop the index (its snapshots hold content that is
//! now gone) and rebuild it at once. Everything expensive runs on the blocking pool.
//!
//! One in [`IndexConfig::persist_one_in`] snapshots (and the state at the head) is
//! stored in `<data dir>/replay-index/` after the build and then every that many records
//! (a purge removes them). A restarted server opens the stored index lazily
//! ([`ReplayIndex::open_persisted`]), so its first replay answer loads one snapshot and
//! folds from it instead of waiting for a whole build; the dense index is built in the
//! background and replaces the lazy one when it is ready.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use conclave_engine::service::{Engine, EngineError, FeedEvent, FeedFilter};
use conclave_engine::{Actor, Origin, Principal, PurgeScope, RoomName};
use conclave_journal::Journal;
use conclave_replay::report::{self, Format, ReportQuery};
use conclave_replay::timeline::{self, TimelineOf, TimelineQuery};
use conclave_replay::{diff, fmt_time, verify, IndexConfig, ReplayError, ReplayIndex};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{parse_principal, parse_room, require_admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Ctx, QueryParams};
use crate::App;

/// Largest timeline page.
pub const MAX_TIMELINE_LIMIT: usize = 10_000;
/// Longest free-text query parameter (names, times).
const MAX_PARAM: usize = 512;

/// The shared replay index, built on first use.
#[derive(Default)]
pub struct Cache {
    index: Mutex<Option<ReplayIndex>>,
    /// Where the index is stored (set by [`follow`]); unset, it is not stored.
    dir: OnceLock<PathBuf>,
    /// Bumped by every invalidation, so that a background build or store that started
    /// before a purge does not bring back what the purge dropped.
    generation: AtomicU64,
    /// Serializes writes to `dir` and its removal.
    writing: Mutex<()>,
    /// A store is under way.
    persisting: AtomicBool,
    /// The head last stored.
    persisted: AtomicU64,
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, Option<ReplayIndex>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the index and removes the stored one (after a purge: their snapshots
    /// hold purged content). Blocking: waits for a store under way.
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.lock() = None;
        if let Some(dir) = self.dir.get() {
            let _writing = self.lock_writing();
            if let Err(e) = conclave_replay::persist::remove(dir) {
                tracing::error!(dir = %dir.display(), error = %e, "cannot remove the stored replay index");
            }
            self.persisted.store(0, Ordering::SeqCst);
        }
    }

    /// Records between two stores of the index.
    fn store_spacing() -> u64 {
        let c = IndexConfig::default();
        c.snapshot_every.saturating_mul(c.persist_one_in.max(1))
    }

    /// Stores the index (the snapshots not stored yet, the times, the links), off the
    /// async workers, unless a store is under way or there is no directory.
    async fn persist(self: &Arc<Self>) {
        if self.dir.get().is_none() || self.persisting.swap(true, Ordering::SeqCst) {
            return;
        }
        let cache = self.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let Some(dir) = cache.dir.get() else {
                return Ok(None);
            };
            let generation = cache.generation.load(Ordering::SeqCst);
            let Some(job) = cache.lock().as_ref().and_then(|i| i.persist_job(dir)) else {
                return Ok(None);
            };
            let _writing = cache.lock_writing();
            if cache.generation.load(Ordering::SeqCst) != generation {
                return Ok(None);
            }
            let head = job.head();
            let report = job.write()?;
            cache.persisted.store(head, Ordering::SeqCst);
            Ok::<_, ReplayError>(Some((head, report)))
        })
        .await;
        self.persisting.store(false, Ordering::SeqCst);
        match stored {
            Ok(Ok(Some((head, r)))) => tracing::debug!(
                head,
                snapshots = r.snapshots,
                written = r.written,
                bytes = r.bytes,
                "replay index stored"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(code = e.code(), error = %e, "cannot store the replay index")
            }
            Err(e) => tracing::error!(error = %e, "replay index store task failed"),
        }
    }

    /// Builds the dense index in the background while a lazy one (opened from stored
    /// snapshots) answers, then puts it in place.
    async fn densify(self: &Arc<Self>, journal: Journal) {
        let cache = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let generation = cache.generation.load(Ordering::SeqCst);
            let mut built = ReplayIndex::build(&journal, IndexConfig::default())?;
            let mut guard = cache.lock();
            let lazy = guard.as_ref().is_some_and(ReplayIndex::is_lazy);
            if lazy && cache.generation.load(Ordering::SeqCst) == generation {
                built.refresh(&journal)?;
                let head = built.head();
                *guard = Some(built);
                return Ok(Some(head));
            }
            Ok::<_, ReplayError>(None)
        })
        .await;
        match done {
            Ok(Ok(Some(head))) => tracing::debug!(head, "replay index densified"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(code = e.code(), error = %e, "replay index build failed"),
            Err(e) => tracing::error!(error = %e, "replay index build task failed"),
        }
    }

    /// Builds the index if there is none, or folds the records it has not seen yet.
    fn current<'a>(
        guard: &'a mut MutexGuard<'_, Option<ReplayIndex>>,
        journal: &Journal,
    ) -> Result<&'a ReplayIndex, ReplayError> {
        let index = match guard.take() {
            Some(mut index) => {
                index.refresh(journal)?;
                index
            }
            None => ReplayIndex::build(journal, IndexConfig::default())?,
        };
        Ok(guard.insert(index))
    }

    /// Opens the stored index lazily if there is a usable one (then builds the dense
    /// one in the background), or builds (or completes) the index now, off the async
    /// workers; then stores it.
    async fn prime(self: &Arc<Self>, journal: Journal) {
        let cache = self.clone();
        let j = journal.clone();
        let built = tokio::task::spawn_blocking(move || {
            let mut guard = cache.lock();
            if guard.is_none() {
                let opened = cache
                    .dir
                    .get()
                    .and_then(|dir| ReplayIndex::open_persisted(&j, IndexConfig::default(), dir));
                if let Some(index) = opened {
                    cache.persisted.store(index.head(), Ordering::SeqCst);
                    return Ok(guard.insert(index).head());
                }
            }
            Cache::current(&mut guard, &j).map(|i| i.head())
        })
        .await;
        match built {
            Ok(Ok(head)) => tracing::debug!(head, "replay index ready"),
            Ok(Err(e)) => tracing::error!(code = e.code(), error = %e, "replay index build failed"),
            Err(e) => tracing::error!(error = %e, "replay index build task failed"),
        }
        let lazy = self.lock().as_ref().is_some_and(ReplayIndex::is_lazy);
        if lazy {
            self.densify(journal).await;
        }
        self.persist().await;
    }

    /// Stores the index again once it has grown by the store spacing.
    fn due_for_store(&self) -> bool {
        let head = self.lock().as_ref().map_or(0, ReplayIndex::head);
        head >= self.persisted.load(Ordering::SeqCst) + Self::store_spacing()
    }

    /// Folds feed events into the index, if there is one (a purge may have dropped it:
    /// the next query or prime rebuilds it from the journal).
    fn apply(&self, journal: &Journal, events: &[Arc<FeedEvent>]) -> Result<(), ReplayError> {
        let mut guard = self.lock();
        if let Some(index) = guard.as_mut() {
            for e in events {
                index.apply(journal, &e.record, &e.event)?;
            }
        }
        Ok(())
    }
}

/// Most feed events folded in one blocking task.
const FOLD_BATCH: usize = 4096;

/// Keeps the replay index current: subscribes to the committed feed first (so nothing
/// committed meanwhile is missed), builds the index from the journal, then folds every
/// committed event into it as the feed delivers it. Ends when the engine stops.
pub(crate) async fn follow(engine: Engine, cache: Arc<Cache>) {
    let journal = engine.journal().clone();
    let _ = cache.dir.set(engine.data_dir().join("replay-index"));
    let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
    cache.prime(journal.clone()).await;
    while let Some(first) = feed.follow("the replay index").await {
        let mut batch = vec![first];
        while batch.len() < FOLD_BATCH {
            match feed.try_next() {
                Ok(Some(e)) => batch.push(e),
                _ => break,
            }
        }
        let (c, j) = (cache.clone(), journal.clone());
        let folded = tokio::task::spawn_blocking(move || c.apply(&j, &batch)).await;
        match folded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The next query refreshes from the journal; say why the feed could not.
                tracing::warn!(code = e.code(), error = %e, "replay index: feed event not folded");
            }
            Err(e) => tracing::error!(error = %e, "replay index fold task failed"),
        }
        if cache.due_for_store() {
            let cache = cache.clone();
            tokio::spawn(async move { cache.persist().await });
        }
    }
}

/// The HTTP status of a replay failure; the code is the error's own stable code.
fn replay_error(e: ReplayError) -> ApiError {
    let status = match &e {
        ReplayError::InvalidArgument(_) | ReplayError::Bundle { .. } => StatusCode::BAD_REQUEST,
        ReplayError::Locked { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!(code = e.code(), error = %e, "replay error");
    }
    ApiError::new(status, e.code(), e.to_string())
}

fn task_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("replay task: {e}"))
}

/// Runs `f` against the live journal and the refreshed index, on the blocking pool.
async fn with_index<T: Send + 'static>(
    app: &App,
    ctx: &Ctx,
    f: impl FnOnce(&Journal, &ReplayIndex) -> Result<T, ReplayError> + Send + 'static,
) -> ApiResult<T> {
    let journal = app.engine.journal().clone();
    let cache = app.replay.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = cache.lock();
        let index = Cache::current(&mut guard, &journal)?;
        f(&journal, index)
    })
    .await
    .map_err(task_error)?
    .map_err(|e| replay_error(e).with_correlation(&ctx.correlation_id))
}

/// Runs `f` against the live journal on the blocking pool (no index needed).
async fn with_journal<T: Send + 'static>(
    app: &App,
    ctx: &Ctx,
    f: impl FnOnce(&Journal) -> Result<T, ReplayError> + Send + 'static,
) -> ApiResult<T> {
    let journal = app.engine.journal().clone();
    tokio::task::spawn_blocking(move || f(&journal))
        .await
        .map_err(task_error)?
        .map_err(|e| replay_error(e).with_correlation(&ctx.correlation_id))
}

fn bounded<'a>(field: &str, v: &'a Option<String>) -> ApiResult<Option<&'a str>> {
    match v.as_deref() {
        Some(s) if s.is_empty() || s.len() > MAX_PARAM => Err(ApiError::invalid(format!(
            "{field}: must be 1..={MAX_PARAM} bytes"
        ))),
        other => Ok(other),
    }
}

fn time(field: &str, v: &Option<String>) -> ApiResult<Option<DateTime<Utc>>> {
    bounded(field, v)?
        .map(|s| {
            conclave_replay::parse_time(s).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
        })
        .transpose()
}

fn room_param(v: &Option<String>) -> ApiResult<Option<RoomName>> {
    bounded("room", v)?.map(parse_room).transpose()
}

fn person_param(field: &str, v: &Option<String>) -> ApiResult<Option<Principal>> {
    bounded(field, v)?
        .map(|s| parse_principal(field, s))
        .transpose()
}

/// A moment: `at` (a time) or `seq`, not both; neither is the head.
#[derive(Debug, Clone, Copy)]
enum Moment {
    Head,
    At(DateTime<Utc>),
    Seq(u64),
}

impl Moment {
    fn parse(at_field: &str, at: &Option<String>, seq: Option<u64>) -> ApiResult<Moment> {
        match (time(at_field, at)?, seq) {
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "{at_field} and its seq: give one, not both"
            ))),
            (Some(t), None) => Ok(Moment::At(t)),
            (None, Some(s)) => Ok(Moment::Seq(s)),
            (None, None) => Ok(Moment::Head),
        }
    }

    fn resolve(self, index: &ReplayIndex, default: u64) -> u64 {
        match self {
            Moment::Head => default,
            Moment::At(t) => index.seq_at(t),
            Moment::Seq(s) => s,
        }
    }
}

// ---------- state and diff ----------

/// `GET /replay/state` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateParams {
    room: Option<String>,
    at: Option<String>,
    seq: Option<u64>,
}

pub async fn state(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<StateParams>,
) -> ApiResult<Response> {
    require_admin(&ctx)?;
    let room = room_param(&q.room)?;
    let moment = Moment::parse("at", &q.at, q.seq)?;
    let found = with_index(&app, &ctx, move |j, index| {
        let seq = moment.resolve(index, index.head());
        Ok(match room {
            Some(room) => index
                .room_at(j, &room, seq)?
                .map(|v| serde_json::to_value(v).map_err(|e| ReplayError::Render(e.to_string())))
                .transpose()?
                .ok_or((room, seq)),
            None => Ok(serde_json::to_value(index.server_at(j, seq)?)
                .map_err(|e| ReplayError::Render(e.to_string()))?),
        })
    })
    .await?;
    match found {
        Ok(v) => Ok(Json(v).into_response()),
        Err((room, seq)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "room.not_found",
            format!("room {room} did not exist at record {seq}"),
        )),
    }
}

/// `GET /replay/diff` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    room: Option<String>,
    from: Option<String>,
    from_seq: Option<u64>,
    to: Option<String>,
    to_seq: Option<u64>,
}

pub async fn diff(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<DiffParams>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let room = room_param(&q.room)?.ok_or_else(|| ApiError::invalid("room: required"))?;
    let from = Moment::parse("from", &q.from, q.from_seq)?;
    let to = Moment::parse("to", &q.to, q.to_seq)?;
    with_index(&app, &ctx, move |j, index| {
        let a = from.resolve(index, 0);
        let b = to.resolve(index, index.head());
        let d = diff::room_diff(j, index, &room, a, b)?;
        serde_json::to_value(d).map_err(|e| ReplayError::Render(e.to_string()))
    })
    .await
    .map(Json)
}

// ---------- timelines and forensic questions ----------

/// `GET /replay/timeline` parameters: at most one of room, person, moderator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineParams {
    room: Option<String>,
    person: Option<String>,
    moderator: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

pub async fn timeline(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<TimelineParams>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let room = room_param(&q.room)?;
    let person = person_param("person", &q.person)?;
    let moderator = person_param("moderator", &q.moderator)?;
    let of = match (room, person, moderator) {
        (None, None, None) => TimelineOf::All,
        (Some(r), None, None) => TimelineOf::Room(r.to_string()),
        (None, Some(p), None) => TimelineOf::Person(p.to_string()),
        (None, None, Some(m)) => TimelineOf::Moderator(m.to_string()),
        _ => {
            return Err(ApiError::invalid(
                "room, person, moderator: give at most one",
            ))
        }
    };
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_TIMELINE_LIMIT {
        return Err(ApiError::invalid(format!(
            "limit: must be 1..={MAX_TIMELINE_LIMIT}"
        )));
    }
    let query = TimelineQuery {
        of,
        from: time("from", &q.from)?,
        to: time("to", &q.to)?,
        limit,
    };
    with_index(&app, &ctx, move |j, index| {
        let t = timeline::timeline(j, index, &query)?;
        serde_json::to_value(t).map_err(|e| ReplayError::Render(e.to_string()))
    })
    .await
    .map(Json)
}

/// `GET /replay/who-was-there` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoParams {
    room: Option<String>,
    at: Option<String>,
    seq: Option<u64>,
}

pub async fn who_was_there(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<WhoParams>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let room = room_param(&q.room)?.ok_or_else(|| ApiError::invalid("room: required"))?;
    let moment = Moment::parse("at", &q.at, q.seq)?;
    with_index(&app, &ctx, move |j, index| {
        let seq = moment.resolve(index, index.head());
        let members = report::who_was_there(j, index, &room, seq)?;
        Ok(json!({
            "room": room.as_str(),
            "seq": seq,
            "at": index.time_of(seq).map(fmt_time),
            "exists": members.is_some(),
            "members": members.unwrap_or_default(),
        }))
    })
    .await
    .map(Json)
}

/// A period, optionally one room; a person for denials.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodParams {
    room: Option<String>,
    from: Option<String>,
    to: Option<String>,
    person: Option<String>,
    format: Option<String>,
    /// For `format=csv`: only this table (one CSV document).
    table: Option<String>,
}

/// A report query from the parameters: an open start is the journal's first record,
/// an open end is now.
struct Period {
    room: Option<RoomName>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl Period {
    fn parse(q: &PeriodParams) -> ApiResult<Period> {
        let p = Period {
            room: room_param(&q.room)?,
            from: time("from", &q.from)?,
            to: time("to", &q.to)?,
        };
        if let (Some(a), Some(b)) = (p.from, p.to) {
            if a > b {
                return Err(ApiError::invalid("from: after to"));
            }
        }
        Ok(p)
    }

    fn query(self, index: &ReplayIndex) -> ReportQuery {
        ReportQuery {
            from: self
                .from
                .unwrap_or_else(|| index.time_of(1).unwrap_or_else(Utc::now)),
            to: self.to.unwrap_or_else(Utc::now),
            room: self.room.map(|r| r.to_string()),
        }
    }

    fn build(self, j: &Journal, index: &ReplayIndex) -> Result<report::Report, ReplayError> {
        report::build(j, index, &self.query(index))
    }
}

fn only_period(q: &PeriodParams, route: &str, person: bool) -> ApiResult<()> {
    if q.format.is_some() || q.table.is_some() || (q.person.is_some() && !person) {
        return Err(ApiError::invalid(format!(
            "{route} takes room, from, to{}",
            if person { ", person" } else { "" }
        )));
    }
    Ok(())
}

pub async fn moderation(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<PeriodParams>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    only_period(&q, "/replay/moderation", false)?;
    let period = Period::parse(&q)?;
    with_index(&app, &ctx, move |j, index| {
        let rep = period.build(j, index)?;
        Ok(json!({
            "period": rep.period,
            "actions": rep.moderation,
            "per_moderator": rep.moderation_summary,
        }))
    })
    .await
    .map(Json)
}

pub async fn denials(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<PeriodParams>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    only_period(&q, "/replay/denials", true)?;
    let person = person_param("person", &q.person)?;
    let period = Period::parse(&q)?;
    with_index(&app, &ctx, move |j, index| {
        let names = person.map(|p| index.person_names(&p.to_string()));
        let rep = period.build(j, index)?;
        let denials: Vec<_> = rep
            .denials
            .into_iter()
            .filter(|d| {
                names
                    .as_ref()
                    .is_none_or(|n| n.contains(&d.person) || n.contains(&d.address))
            })
            .collect();
        Ok(json!({ "period": rep.period, "denials": denials }))
    })
    .await
    .map(Json)
}

pub async fn invitations(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<PeriodParams>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    only_period(&q, "/replay/invitations", false)?;
    let period = Period::parse(&q)?;
    with_index(&app, &ctx, move |j, index| {
        let rep = period.build(j, index)?;
        Ok(json!({
            "period": rep.period,
            "summary": rep.invitation_summary,
            "invitations": rep.invitations,
        }))
    })
    .await
    .map(Json)
}

// ---------- reports ----------

/// A rendered document with its type, and a file name when it is a download.
fn document(bytes: Vec<u8>, content_type: &'static str, download: Option<String>) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(name) =
        download.and_then(|n| HeaderValue::from_str(&format!("attachment; filename=\"{n}\"")).ok())
    {
        h.insert(header::CONTENT_DISPOSITION, name);
    }
    resp
}

/// A file-name-safe stamp of a time (`20250301T093000Z`).
fn stamp(t: &str) -> String {
    t.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(15)
        .collect::<String>()
        + "Z"
}

pub async fn report(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<PeriodParams>,
) -> ApiResult<Response> {
    require_admin(&ctx)?;
    if q.person.is_some() {
        return Err(ApiError::invalid(
            "person: not a report parameter (see /replay/timeline)",
        ));
    }
    let format: Format = bounded("format", &q.format)?
        .unwrap_or("json")
        .parse()
        .map_err(|e: ReplayError| ApiError::invalid(format!("format: {e}")))?;
    let table = bounded("table", &q.table)?.map(str::to_owned);
    if table.is_some() && format != Format::Csv {
        return Err(ApiError::invalid("table: only with format=csv"));
    }
    let period = Period::parse(&q)?;
    if matches!(format, Format::Csv | Format::Rec) {
        return streamed_report(app, ctx, period, format, table).await;
    }
    let rendered = with_index(&app, &ctx, move |j, index| {
        let rep = period.build(j, index)?;
        let name = format!(
            "conclave-report-{}-{}",
            stamp(&rep.period.from),
            stamp(&rep.period.to)
        );
        Ok(match format {
            Format::Json => (rep.to_json()?.into_bytes(), "application/json", None),
            Format::Html => (rep.to_html().into_bytes(), "text/html; charset=utf-8", None),
            Format::Xlsx => (
                rep.to_xlsx()?,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                Some(format!("{name}.xlsx")),
            ),
            Format::Csv | Format::Rec => unreachable!("streamed above"),
        })
    })
    .await?;
    let (bytes, content_type, download) = rendered;
    Ok(document(bytes, content_type, download))
}

/// `GET /replay/report` as csv or rec: every section but the event log is built (and a
/// bad `table` refused) before the response starts; the event log, the part as large as
/// the journal, is then read from the journal and streamed in bounded chunks, so the
/// memory held does not grow with the period's records. A failure after that cuts the
/// body short.
async fn streamed_report(
    app: App,
    ctx: Ctx,
    period: Period,
    format: Format,
    table: Option<String>,
) -> ApiResult<Response> {
    let plan = with_index(&app, &ctx, move |j, index| {
        report::plan(j, index, &period.query(index))
    })
    .await?;
    if let Some(t) = &table {
        let known = plan.table_names();
        if !known.contains(&t.as_str()) {
            return Err(replay_error(ReplayError::InvalidArgument(format!(
                "table {t:?}: one of {}",
                known.join(", ")
            )))
            .with_correlation(&ctx.correlation_id));
        }
    }
    let p = &plan.report().period;
    let name = format!("conclave-report-{}-{}", stamp(&p.from), stamp(&p.to));
    let (content_type, file) = match (format, &table) {
        (Format::Rec, _) => ("text/plain; charset=utf-8", format!("{name}.rec")),
        (_, Some(t)) => ("text/csv; charset=utf-8", format!("{name}-{t}.csv")),
        (_, None) => ("text/csv; charset=utf-8", format!("{name}.csv")),
    };
    let journal = app.engine.journal().clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<BodyChunk>(BODY_CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = BodyWriter {
            buf: Vec::with_capacity(BODY_CHUNK),
            tx: tx.clone(),
        };
        let written = match format {
            Format::Rec => plan.write_rec(&journal, &mut out),
            _ => plan.write_csv(&journal, table.as_deref(), &mut out),
        };
        if let Err(e) = written {
            tracing::warn!(code = e.code(), error = %e, "report export cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = axum::body::Body::from_stream(chunks).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

// ---------- verification ----------

pub async fn verify_journal(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    with_journal(&app, &ctx, |j| {
        let check = verify::verify_chain(j)?;
        serde_json::to_value(check).map_err(|e| ReplayError::Render(e.to_string()))
    })
    .await
    .map(Json)
}

pub async fn checkpoint(app: App, ctx: Ctx) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let data_dir = app.engine.data_dir().to_path_buf();
    with_journal(&app, &ctx, move |j| {
        let key = verify::load_or_create_key(&data_dir)?;
        let (cp, chain) = verify::checkpoint(j, &key, Utc::now())?;
        Ok(json!({ "checkpoint": cp, "chain": chain }))
    })
    .await
    .map(Json)
}

/// `GET /replay/bundle` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleParams {
    from_seq: Option<u64>,
    force: Option<bool>,
}

/// Bytes of a streamed body, in chunks of about this size.
const BODY_CHUNK: usize = 64 * 1024;
/// Chunks in flight between the writer and the connection: the memory a streamed
/// export holds, whatever its size.
const BODY_CHUNKS_IN_FLIGHT: usize = 8;

type BodyChunk = Result<axum::body::Bytes, std::io::Error>;

/// A `Write` on the blocking pool whose bytes become a streamed response body, in
/// bounded chunks: a slow client slows the writer down instead of the server buffering.
struct BodyWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<BodyChunk>,
}

impl BodyWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(BODY_CHUNK));
        self.tx.blocking_send(Ok(chunk.into())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BODY_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// What the response headers of a bundle say, known before its first record is read.
struct BundleHead {
    from_seq: u64,
    to_seq: u64,
    records: u64,
    chain_ok: bool,
}

/// `GET /replay/bundle`: the bundle streamed as it is read from the journal (constant
/// memory whatever the journal's size). The chain is verified and the checkpoint signed
/// before the response starts, so its status and headers are final; a failure after
/// that (a read error, the client gone) cuts the body short, which a verifier reports
/// as a bundle without its trailer.
pub async fn bundle(
    app: App,
    ctx: Ctx,
    QueryParams(q): QueryParams<BundleParams>,
) -> ApiResult<Response> {
    require_admin(&ctx)?;
    let data_dir = app.engine.data_dir().to_path_buf();
    let journal = app.engine.journal().clone();
    let from_seq = q.from_seq.unwrap_or(1);
    let force = q.force.unwrap_or(false);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<BodyChunk>(BODY_CHUNKS_IN_FLIGHT);
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let planned = verify::load_or_create_key(&data_dir)
            .and_then(|key| verify::plan_bundle(&journal, &key, from_seq, force, Utc::now()));
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                let _ = head_tx.send(Err(e));
                return;
            }
        };
        let head = BundleHead {
            from_seq: plan.from_seq(),
            to_seq: plan.to_seq(),
            records: plan.records(),
            chain_ok: plan.chain().ok,
        };
        if head_tx.send(Ok(head)).is_err() {
            return;
        }
        let mut out = BodyWriter {
            buf: Vec::with_capacity(BODY_CHUNK),
            tx: tx.clone(),
        };
        if let Err(e) = plan.write(&journal, &mut out) {
            tracing::warn!(code = e.code(), error = %e, "bundle export cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let head = head_rx
        .await
        .map_err(|_| ApiError::internal("replay task: the bundle export ended early"))?
        .map_err(|e| replay_error(e).with_correlation(&ctx.correlation_id))?;
    let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = axum::body::Body::from_stream(chunks).into_response();
    let name = format!("conclave-bundle-{}-{}.jsonl", head.from_seq, head.to_seq);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        "x-conclave-chain-ok",
        HeaderValue::from_static(if head.chain_ok { "true" } else { "false" }),
    );
    h.insert("x-conclave-bundle-records", HeaderValue::from(head.records));
    Ok(resp)
}

// ---------- retention and erasure ----------

/// `POST /replay/retention` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Days to keep (0 forever, -1 none); default the policy's `log_days`.
    days: Option<i32>,
}

/// `POST /replay/erasure` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    person: String,
}

fn origin(ctx: &Ctx) -> Origin {
    Origin {
        gateway: "web".into(),
        protocol: "http".into(),
        remote_addr: ctx.remote.map(|r| r.to_string()),
    }
}

async fn purge(
    app: &App,
    ctx: &Ctx,
    scope: Option<PurgeScope>,
    action: &str,
) -> ApiResult<Json<Value>> {
    let Some(scope) = scope else {
        return Ok(Json(json!({
            "action": action, "records_selected": 0, "records_purged": 0,
            "journaled_seq": null, "note": "log-days 0 keeps everything",
        })));
    };
    let out = app
        .engine
        .purge_content(
            scope,
            Actor::Admin,
            origin(ctx),
            Some(ctx.correlation_id.clone()),
        )
        .await;
    // Whatever happened, content may be gone: the index must not serve it again.
    let cache = app.replay.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || cache.invalidate()).await {
        tracing::error!(error = %e, "replay index invalidation task failed");
    }
    tokio::spawn({
        let (cache, journal) = (app.replay.clone(), app.engine.journal().clone());
        async move { cache.prime(journal).await }
    });
    let out =
        out.map_err(|e: EngineError| ApiError::from(e).with_correlation(&ctx.correlation_id))?;
    let (subject, before) = out.scope.fields();
    Ok(Json(json!({
        "action": out.action,
        "subject": subject.map(|s| s.to_string()),
        "before": before.map(fmt_time),
        "records_selected": out.records_selected,
        "records_purged": out.records_purged,
        "up_to_seq": out.up_to_seq,
        "journaled_seq": out.journaled_seq,
        "correlation_id": out.correlation_id,
    })))
}

pub async fn retention(app: App, ctx: Ctx, Body(b): Body<RetentionBody>) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let days = match b.days {
        Some(d) if d < -1 => {
            return Err(ApiError::invalid(
                "days: -1 (keep none), 0 (keep forever) or a number of days",
            ))
        }
        Some(d) => d,
        None => app.engine.read(|s| s.policy.log_days),
    };
    purge(
        &app,
        &ctx,
        PurgeScope::log_days(days, app.engine.now()),
        "retention",
    )
    .await
}

pub async fn erasure(app: App, ctx: Ctx, Body(b): Body<ErasureBody>) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let person = person_param("person", &Some(b.person))?
        .ok_or_else(|| ApiError::invalid("person: required"))?;
    purge(&app, &ctx, Some(PurgeScope::Person(person)), "erasure").await
}
