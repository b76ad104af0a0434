//! Rendering a report: every format is drawn from the same tables, so they agree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rust_xlsxwriter::{Format as XFormat, Workbook};
use serde::{Deserialize, Serialize};

use std::io::Write;
use std::path::Path;

use conclave_journal::Journal;

use super::{EventRow, Report, ReportPlan};
use crate::error::{ReplayError, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Xlsx,
    Rec,
    Html,
}

impl std::str::FromStr for Format {
    type Err = ReplayError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "xlsx" => Format::Xlsx,
            "rec" => Format::Rec,
            "html" => Format::Html,
            other => {
                return Err(ReplayError::InvalidArgument(format!(
                    "unknown format {other:?} (json, csv, xlsx, rec, html)"
                )))
            }
        })
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A UTC time, kept as RFC 3339 text (and as a date cell in XLSX).
    Time(String),
    Empty,
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Time(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Empty => String::new(),
        }
    }
}

fn t(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}
fn ot(s: &Option<String>) -> Cell {
    s.as_ref().map_or(Cell::Empty, |s| Cell::Text(s.clone()))
}
fn tm(s: &str) -> Cell {
    Cell::Time(s.to_owned())
}
fn otm(s: &Option<String>) -> Cell {
    s.as_ref().map_or(Cell::Empty, |s| Cell::Time(s.clone()))
}
fn n(i: impl TryInto<i64>) -> Cell {
    Cell::Int(i.try_into().unwrap_or(i64::MAX))
}
fn on(i: Option<u64>) -> Cell {
    i.map_or(Cell::Empty, n)
}

/// A named table: a CSV file, an XLSX sheet, a recutils record set, an HTML table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// File / sheet / record type name.
    pub name: &'static str,
    pub title: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Report {
    /// The report as tables (every section, summaries first).
    pub fn tables(&self) -> Vec<Table> {
        self.tables_counting(self.events.len() as u64)
    }

    /// The tables, the summary counting `events` rows in the event log.
    pub(super) fn tables_counting(&self, events: u64) -> Vec<Table> {
        let p = &self.period;
        let mut out = vec![Table {
            name: "summary",
            title: "Summary",
            columns: vec!["item", "value"],
            rows: vec![
                vec![t("period_from"), tm(&p.from)],
                vec![t("period_to"), tm(&p.to)],
                vec![t("room"), ot(&p.room)],
                vec![t("first_seq"), n(p.from_seq)],
                vec![t("last_seq"), n(p.to_seq)],
                vec![t("journal_head"), n(p.journal_head)],
                vec![t("journal_head_hash"), t(&p.journal_head_hash)],
                vec![t("sessions"), n(self.attendance.len() as u64)],
                vec![t("moderation_actions"), n(self.moderation.len() as u64)],
                vec![t("bans"), n(self.bans.len() as u64)],
                vec![t("autobans"), n(self.autobans.len() as u64)],
                vec![t("invitations_issued"), n(self.invitation_summary.issued)],
                vec![
                    t("invitations_accepted"),
                    n(self.invitation_summary.accepted),
                ],
                vec![
                    t("invitations_declined"),
                    n(self.invitation_summary.declined),
                ],
                vec![t("invitations_used"), n(self.invitation_summary.used)],
                vec![t("invitations_expired"), n(self.invitation_summary.expired)],
                vec![t("invitations_revoked"), n(self.invitation_summary.revoked)],
                vec![t("denials"), n(self.denials.len() as u64)],
                vec![t("retention_actions"), n(self.retention.len() as u64)],
                vec![t("recordings"), n(self.recordings.len() as u64)],
                vec![t("events"), n(events)],
            ],
        }];
        out.push(Table {
            name: "attendance",
            title: "Attendance",
            columns: vec![
                "room",
                "person",
                "address",
                "protocol",
                "gateway",
                "session",
                "joined_at",
                "left_at",
                "duration_secs",
                "end",
                "join_seq",
                "end_seq",
            ],
            rows: self
                .attendance
                .iter()
                .map(|r| {
                    vec![
                        t(&r.room),
                        t(&r.person),
                        t(&r.address),
                        t(&r.protocol),
                        t(&r.gateway),
                        t(&r.session),
                        tm(&r.joined_at),
                        otm(&r.left_at),
                        n(r.duration_secs),
                        t(&r.end),
                        on(r.join_seq),
                        on(r.end_seq),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "attendance_summary",
            title: "Attendance per room and protocol",
            columns: vec!["room", "protocol", "sessions", "people", "total_secs"],
            rows: self
                .attendance_summary
                .iter()
                .map(|r| {
                    vec![
                        t(&r.room),
                        t(&r.protocol),
                        n(r.sessions),
                        n(r.people),
                        n(r.total_secs),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "moderation",
            title: "Moderation actions",
            columns: vec![
                "seq",
                "at",
                "scope",
                "moderator",
                "moderator_role",
                "action",
                "subject",
                "detail",
                "gateway",
                "protocol",
                "moderators_at_time",
            ],
            rows: self
                .moderation
                .iter()
                .map(|r| {
                    vec![
                        n(r.seq),
                        tm(&r.at),
                        t(&r.scope),
                        t(&r.moderator),
                        t(&r.moderator_role),
                        t(&r.action),
                        ot(&r.subject),
                        t(&r.detail),
                        ot(&r.gateway),
                        ot(&r.protocol),
                        t(&r.moderators_at_time.join(", ")),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "moderation_summary",
            title: "Moderation per moderator",
            columns: vec!["moderator", "action", "count"],
            rows: self
                .moderation_summary
                .iter()
                .map(|r| vec![t(&r.moderator), t(&r.action), n(r.count)])
                .collect(),
        });
        out.push(Table {
            name: "bans",
            title: "Bans",
            columns: vec![
                "seq",
                "at",
                "scope",
                "subject",
                "by",
                "reason",
                "until",
                "lifted_at",
                "lifted_by",
                "expired",
            ],
            rows: self
                .bans
                .iter()
                .map(|r| {
                    vec![
                        on(r.seq),
                        tm(&r.at),
                        t(&r.scope),
                        t(&r.subject),
                        t(&r.by),
                        ot(&r.reason),
                        otm(&r.until),
                        otm(&r.lifted_at),
                        ot(&r.lifted_by),
                        t(if r.expired { "yes" } else { "no" }),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "autobans",
            title: "Autobans",
            columns: vec!["seq", "at", "key", "attempts", "until", "lifted_at"],
            rows: self
                .autobans
                .iter()
                .map(|r| {
                    vec![
                        n(r.seq),
                        tm(&r.at),
                        t(&r.key),
                        n(r.attempts),
                        tm(&r.until),
                        otm(&r.lifted_at),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "invitations",
            title: "Invitations",
            columns: vec![
                "room",
                "invitation",
                "invitee",
                "issued_by",
                "issued_at",
                "expires_at",
                "single_use",
                "state",
                "answered_by",
                "answered_at",
                "used_by",
                "used_at",
                "ended_at",
            ],
            rows: self
                .invitations
                .iter()
                .map(|r| {
                    vec![
                        t(&r.room),
                        t(&r.invitation),
                        t(&r.invitee),
                        t(&r.issued_by),
                        tm(&r.issued_at),
                        otm(&r.expires_at),
                        t(if r.single_use { "yes" } else { "no" }),
                        t(&r.state),
                        ot(&r.answered_by),
                        otm(&r.answered_at),
                        ot(&r.used_by),
                        otm(&r.used_at),
                        otm(&r.ended_at),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "denials",
            title: "Denied joins",
            columns: vec![
                "seq",
                "at",
                "room",
                "person",
                "address",
                "protocol",
                "reason",
                "detail",
                "gateway",
                "remote_addr",
            ],
            rows: self
                .denials
                .iter()
                .map(|r| {
                    vec![
                        n(r.seq),
                        tm(&r.at),
                        t(&r.room),
                        t(&r.person),
                        t(&r.address),
                        t(&r.protocol),
                        t(&r.reason),
                        ot(&r.detail),
                        ot(&r.gateway),
                        ot(&r.remote_addr),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "denials_by_reason",
            title: "Denials by reason",
            columns: vec!["reason", "count"],
            rows: self
                .denials_by_reason
                .iter()
                .map(|(k, v)| vec![t(k), n(*v)])
                .collect(),
        });
        out.push(Table {
            name: "action_denials",
            title: "Refused actions",
            columns: vec!["seq", "at", "room", "actor", "action", "subject", "code"],
            rows: self
                .action_denials
                .iter()
                .map(|r| {
                    vec![
                        n(r.seq),
                        tm(&r.at),
                        ot(&r.room),
                        ot(&r.actor),
                        t(&r.action),
                        ot(&r.subject),
                        t(&r.code),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "retention",
            title: "Retention and erasure",
            columns: vec![
                "seq", "at", "actor", "action", "subject", "before", "records",
            ],
            rows: self
                .retention
                .iter()
                .map(|r| {
                    vec![
                        n(r.seq),
                        tm(&r.at),
                        ot(&r.actor),
                        t(&r.action),
                        ot(&r.subject),
                        otm(&r.before),
                        n(r.records),
                    ]
                })
                .collect(),
        });
        out.push(Table {
            name: "recordings",
            title: "Recordings",
            columns: vec![
                "room",
                "recording",
                "started_at",
                "stopped_at",
                "by",
                "video",
                "file",
                "kind",
                "track",
                "bytes",
                "duration_ms",
                "blake3",
                "erased",
            ],
            // One row per file (a recording without files yet: one row without one).
            rows: self
                .recordings
                .iter()
                .flat_map(|r| {
                    let head = || {
                        vec![
                            t(&r.room),
                            t(&r.recording),
                            tm(&r.started_at),
                            otm(&r.stopped_at),
                            ot(&r.by),
                            t(if r.video { "yes" } else { "no" }),
                        ]
                    };
                    let mut rows: Vec<Vec<Cell>> = r
                        .files
                        .iter()
                        .map(|f| {
                            let mut row = head();
                            row.extend([
                                t(&f.name),
                                t(&f.kind),
                                ot(&f.track),
                                n(f.bytes),
                                n(f.duration_ms),
                                t(&f.blake3),
                                ot(&r.erased),
                            ]);
                            row
                        })
                        .collect();
                    if rows.is_empty() {
                        let mut row = head();
                        row.extend(std::iter::repeat_n(Cell::Empty, 6));
                        row.push(ot(&r.erased));
                        rows.push(row);
                    }
                    rows
                })
                .collect(),
        });
        out.push(events_table(self.events.iter().map(event_cells).collect()));
        out
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| ReplayError::Render(e.to_string()))
    }

    /// One CSV document per table: `(name, csv text)`.
    pub fn to_csv(&self) -> Result<Vec<(&'static str, String)>> {
        let render = |e: std::string::FromUtf8Error| ReplayError::Render(e.to_string());
        self.tables()
            .into_iter()
            .map(|table| {
                let mut bytes = Vec::new();
                write_csv_table(&table, &mut bytes)?;
                let text = String::from_utf8(bytes).map_err(render)?;
                Ok((table.name, text))
            })
            .collect()
    }

    /// recutils (GNU recutils, as Jami's list-account-details prints): one record set per
    /// table with a `%rec:` descriptor; multi-line values continue with `+ `.
    pub fn to_rec(&self) -> String {
        let mut out = String::new();
        out.push_str(REC_HEAD);
        for table in self.tables() {
            rec_descriptor(&mut out, &table);
            for row in &table.rows {
                rec_row(&mut out, &table.columns, row);
            }
        }
        out
    }

    /// An XLSX workbook, one sheet per table; dates are real date cells, in UTC.
    pub fn to_xlsx(&self) -> Result<Vec<u8>> {
        let err = |e: rust_xlsxwriter::XlsxError| ReplayError::Render(e.to_string());
        let mut wb = Workbook::new();
        let bold = XFormat::new().set_bold();
        let date = XFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        for table in self.tables() {
            let sheet = wb.add_worksheet();
            sheet
                .set_name(table.title.chars().take(31).collect::<String>())
                .map_err(err)?;
            for (c, name) in table.columns.iter().enumerate() {
                let header = if table
                    .rows
                    .first()
                    .and_then(|r| r.get(c))
                    .is_some_and(|x| matches!(x, Cell::Time(_)))
                {
                    format!("{name} (UTC)")
                } else {
                    (*name).to_owned()
                };
                sheet
                    .write_string_with_format(0, col(c)?, header, &bold)
                    .map_err(err)?;
            }
            for (r, row) in table.rows.iter().enumerate() {
                let r = u32::try_from(r + 1)
                    .map_err(|_| ReplayError::Render("too many rows".into()))?;
                for (c, cell) in row.iter().enumerate() {
                    let c = col(c)?;
                    match cell {
                        Cell::Text(s) => {
                            sheet.write_string(r, c, s).map_err(err)?;
                        }
                        Cell::Int(i) => {
                            // Exact up to 2^53, far beyond any count or sequence here.
                            sheet.write_number(r, c, *i as f64).map_err(err)?;
                        }
                        Cell::Time(s) => match DateTime::parse_from_rfc3339(s) {
                            Ok(dt) => {
                                let naive = dt.with_timezone(&Utc).naive_utc();
                                sheet
                                    .write_datetime_with_format(r, c, naive, &date)
                                    .map_err(err)?;
                            }
                            Err(_) => {
                                sheet.write_string(r, c, s).map_err(err)?;
                            }
                        },
                        Cell::Empty => {}
                    }
                }
            }
            sheet.autofit();
        }
        wb.save_to_buffer().map_err(err)
    }

    /// A self-contained HTML page: the tables, and per room a presence timeline drawn in
    /// inline SVG (no scripts, no external assets).
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let p = &self.period;
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Conclave report {} to {}</title><style>\
             body{{font-family:sans-serif;margin:2em;color:#222}}\
             table{{border-collapse:collapse;margin:0.5em 0 2em;font-size:0.85em}}\
             th,td{{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}}\
             th{{background:#eee}} h2{{margin-top:1.5em}} .legend span{{margin-right:1em}}\
             </style></head><body>\n<h1>Conclave compliance report</h1>\n\
             <p>Period (UTC): {} to {} &mdash; records {} to {} &mdash; journal head {} ({})</p>\n",
            esc(&p.from),
            esc(&p.to),
            esc(&p.from),
            esc(&p.to),
            p.from_seq,
            p.to_seq,
            p.journal_head,
            esc(&p.journal_head_hash)
        );
        h.push_str("<h2>Presence per room</h2>\n");
        h.push_str(&self.presence_svg());
        for table in self.tables() {
            let _ = writeln!(h, "<h2 id=\"{}\">{}</h2>", table.name, esc(table.title));
            if table.rows.is_empty() {
                h.push_str("<p>None.</p>\n");
                continue;
            }
            h.push_str("<table><thead><tr>");
            for c in &table.columns {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr></thead><tbody>\n");
            for row in &table.rows {
                h.push_str("<tr>");
                for cell in row {
                    let _ = write!(h, "<td>{}</td>", esc(&cell.text()));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</tbody></table>\n");
        }
        h.push_str("</body></html>\n");
        h
    }

    /// One SVG per room: a lane per person, a bar per session, coloured by protocol.
    fn presence_svg(&self) -> String {
        let parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        };
        // The chart spans the period, narrowed to the presence it shows (an open-ended
        // period would otherwise squeeze every bar into a pixel).
        let first = self
            .attendance
            .iter()
            .filter_map(|a| parse(&a.joined_at))
            .min();
        let last = self
            .attendance
            .iter()
            .filter_map(|a| a.left_at.as_deref().and_then(parse))
            .max();
        let period_from = parse(&self.period.from);
        let period_to = parse(&self.period.to);
        let from = match (period_from, first) {
            (Some(p), Some(f)) => p.max(f),
            (p, f) => p.or(f).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        };
        let to = match (period_to, last) {
            (Some(p), Some(l)) if self.attendance.iter().all(|a| a.left_at.is_some()) => p.min(l),
            (Some(p), _) => p,
            (None, l) => l.unwrap_or(from),
        };
        let (from_label, to_label) = (crate::fmt_time(from), crate::fmt_time(to));
        let span = (to - from).num_milliseconds().max(1) as f64;
        let mut rooms: BTreeMap<&str, BTreeMap<&str, Vec<&super::AttendanceRow>>> = BTreeMap::new();
        for r in &self.attendance {
            rooms
                .entry(&r.room)
                .or_default()
                .entry(&r.person)
                .or_default()
                .push(r);
        }
        if rooms.is_empty() {
            return "<p>Nobody was present.</p>\n".into();
        }
        let colour = |proto: &str| match proto {
            "sip" => "#d9822b",
            "xmpp" => "#2b7bd9",
            "web" => "#3fa34d",
            _ => "#888888",
        };
        let mut h = String::from(
            "<p class=\"legend\"><span style=\"color:#d9822b\">&#9632; sip</span>\
             <span style=\"color:#2b7bd9\">&#9632; xmpp</span>\
             <span style=\"color:#3fa34d\">&#9632; web</span></p>\n",
        );
        let (label_w, plot_w, lane_h) = (260.0, 700.0, 22.0);
        for (room, people) in rooms {
            let height = 30.0 + lane_h * people.len() as f64;
            let _ = writeln!(
                h,
                "<h3>{}</h3>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
                 role=\"img\" aria-label=\"presence in {}\">",
                esc(room),
                label_w + plot_w + 10.0,
                height,
                esc(room)
            );
            let _ = writeln!(
                h,
                "<line x1=\"{label_w}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
                 <text x=\"{label_w}\" y=\"{}\" font-size=\"10\">{}</text>\
                 <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
                height - 20.0,
                label_w + plot_w,
                height - 20.0,
                height - 6.0,
                esc(&from_label),
                label_w + plot_w,
                height - 6.0,
                esc(&to_label)
            );
            for (lane, (person, sessions)) in people.into_iter().enumerate() {
                let y = 4.0 + lane_h * lane as f64;
                let _ = writeln!(
                    h,
                    "<text x=\"0\" y=\"{}\" font-size=\"11\">{}</text>",
                    y + 13.0,
                    esc(person)
                );
                for s in sessions {
                    let start = parse(&s.joined_at).unwrap_or(from).max(from);
                    let end = s.left_at.as_deref().and_then(parse).unwrap_or(to).min(to);
                    let x0 = label_w + plot_w * ((start - from).num_milliseconds() as f64 / span);
                    let x1 = label_w + plot_w * ((end - from).num_milliseconds() as f64 / span);
                    let _ = writeln!(
                        h,
                        "<rect x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"16\" fill=\"{}\">\
                         <title>{} via {} ({}), {} to {}</title></rect>",
                        (x1 - x0).max(1.5),
                        colour(&s.protocol),
                        esc(&s.address),
                        esc(&s.gateway),
                        esc(&s.session),
                        esc(&s.joined_at),
                        esc(s.left_at.as_deref().unwrap_or("end of period"))
                    );
                }
            }
            h.push_str("</svg>\n");
        }
        h
    }
}

/// The first line of a recutils report.
const REC_HEAD: &str = "# Conclave compliance report, dates in UTC\n";

fn event_columns() -> Vec<&'static str> {
    vec![
        "seq",
        "date_utc",
        "event",
        "stream",
        "actor",
        "subject",
        "summary",
        "content",
        "gateway",
        "protocol",
        "remote_addr",
        "correlation_id",
    ]
}

fn events_table(rows: Vec<Vec<Cell>>) -> Table {
    Table {
        name: "events",
        title: "Event log",
        columns: event_columns(),
        rows,
    }
}

fn event_cells(r: &EventRow) -> Vec<Cell> {
    vec![
        n(r.seq),
        tm(&r.at),
        t(&r.event_type),
        t(&r.stream),
        ot(&r.actor),
        ot(&r.subject),
        t(&r.summary),
        ot(&r.content),
        ot(&r.gateway),
        ot(&r.protocol),
        ot(&r.remote_addr),
        ot(&r.correlation_id),
    ]
}

fn render_err(e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Render(e.to_string())
}

/// One table as a CSV document.
fn write_csv_table(table: &Table, out: &mut dyn Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(&table.columns).map_err(render_err)?;
    for row in &table.rows {
        w.write_record(row.iter().map(Cell::text))
            .map_err(render_err)?;
    }
    w.flush().map_err(render_err)
}

/// A recutils record set's descriptor.
fn rec_descriptor(out: &mut String, table: &Table) {
    let _ = writeln!(
        out,
        "\n%rec: {}\n%doc: {}\n",
        rec_type(table.name),
        table.title
    );
}

/// One recutils record (empty cells left out; multi-line values continue with `+ `).
fn rec_row(out: &mut String, columns: &[&str], row: &[Cell]) {
    for (col, cell) in columns.iter().zip(row) {
        if matches!(cell, Cell::Empty) {
            continue;
        }
        let text = cell.text();
        let mut lines = text.split('\n');
        let _ = writeln!(out, "{col}: {}", lines.next().unwrap_or_default());
        for more in lines {
            let _ = writeln!(out, "+ {more}");
        }
    }
    out.push('\n');
}

impl ReportPlan {
    /// The names of the report's tables, in order.
    pub fn table_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self
            .report
            .tables_counting(self.events)
            .iter()
            .map(|t| t.name)
            .collect();
        names.retain(|n| *n != "events");
        names.push("events");
        names
    }

    /// Streams the CSV form: every table as `# name` sections joined by a blank line
    /// (as [`Report::to_csv`] joined), or only `table`; byte for byte what the in-memory
    /// rendering gives. The event log is read from the journal row by row.
    pub fn write_csv(
        &self,
        journal: &Journal,
        table: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let io = |e: std::io::Error| ReplayError::io(Path::new("report"), e);
        if let Some(name) = table {
            if !self.table_names().contains(&name) {
                return Err(ReplayError::InvalidArgument(format!(
                    "table {name:?}: one of {}",
                    self.table_names().join(", ")
                )));
            }
        }
        for t in self.report.tables_counting(self.events) {
            if t.name == "events" || table.is_some_and(|want| want != t.name) {
                continue;
            }
            if table.is_none() {
                writeln!(out, "# {}", t.name).map_err(io)?;
            }
            write_csv_table(&t, out)?;
            if table.is_none() {
                out.write_all(b"\n").map_err(io)?;
            }
        }
        if table.is_some_and(|want| want != "events") {
            return out.flush().map_err(io);
        }
        if table.is_none() {
            out.write_all(b"# events\n").map_err(io)?;
        }
        let mut w = csv::Writer::from_writer(&mut *out);
        w.write_record(event_columns()).map_err(render_err)?;
        self.each_event(journal, |r| {
            w.write_record(event_cells(r).iter().map(Cell::text))
                .map_err(render_err)
        })?;
        w.flush().map_err(render_err)?;
        drop(w);
        out.flush().map_err(io)
    }

    /// Streams the recutils form, byte for byte what [`Report::to_rec`] gives; the
    /// event log is read from the journal record by record.
    pub fn write_rec(&self, journal: &Journal, out: &mut dyn Write) -> Result<()> {
        let io = |e: std::io::Error| ReplayError::io(Path::new("report"), e);
        let mut text = String::from(REC_HEAD);
        for t in self.report.tables_counting(self.events) {
            if t.name == "events" {
                continue;
            }
            rec_descriptor(&mut text, &t);
            for row in &t.rows {
                rec_row(&mut text, &t.columns, row);
            }
        }
        rec_descriptor(&mut text, &events_table(Vec::new()));
        out.write_all(text.as_bytes()).map_err(io)?;
        self.each_event(journal, |r| {
            text.clear();
            rec_row(&mut text, &event_columns(), &event_cells(r));
            out.write_all(text.as_bytes()).map_err(io)
        })?;
        out.flush().map_err(io)
    }
}

fn col(c: usize) -> Result<u16> {
    u16::try_from(c).map_err(|_| ReplayError::Render("too many columns".into()))
}

/// `attendance_summary` -> `AttendanceSummary` (recutils record type names).
fn rec_type(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// HTML escaping for text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
