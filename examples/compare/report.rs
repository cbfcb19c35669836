//! The table, the JSON and the SVG chart of a run.

use std::fmt::Write as _;

use crate::workloads::Impl;
use crate::{Options, Outcome};

/// Where the run happened.
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub workers: usize,
    pub io_backend: String,
    pub unix_time: u64,
}

impl Machine {
    pub fn detect(workers: usize, backend: greenring::IoBackend) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(
                || std::env::consts::ARCH.to_owned(),
                |s| s.trim().to_owned(),
            );
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
            workers,
            io_backend: backend.name().to_owned(),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// The line under the table that says where and how it ran.
pub fn machine_line(machine: &Machine, options: &Options) -> String {
    format!(
        "{} ({} CPUs), Linux {}, {} workers for greenring and tokio, greenring I/O on {}, \
         median of {} rounds after a warm-up{}",
        machine.cpu,
        machine.cpus,
        machine.kernel,
        machine.workers,
        machine.io_backend,
        options.reps,
        if options.quick { " (quick mode)" } else { "" }
    )
}

fn format_value(value: f64) -> String {
    if !value.is_finite() {
        "-".to_owned()
    } else if value >= 100.0 {
        format!("{:.0}", value)
    } else if value >= 10.0 {
        format!("{:.1}", value)
    } else {
        format!("{:.2}", value)
    }
}

/// Columns of the table, in order; greenring-hooks only in a run that has it.
const COLUMNS: [Impl; 5] = [
    Impl::Greenring,
    Impl::Tokio,
    Impl::Std,
    Impl::Corosensei,
    Impl::GreenringHooks,
];

/// A design's column heading.
fn heading(imp: Impl) -> &'static str {
    match imp {
        Impl::Std => "std threads",
        other => other.name(),
    }
}

/// How far greenring is ahead of another design: theirs ÷ ours where lower is better,
/// ours ÷ theirs where higher is better, so above 1 means greenring is ahead either way.
fn lead(ours: Option<f64>, theirs: Option<f64>, higher_is_better: bool) -> String {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if ours > 0.0 && theirs > 0.0 => {
            let ratio = if higher_is_better {
                ours / theirs
            } else {
                theirs / ours
            };
            format!("{ratio:.2}x")
        }
        _ => "n/a".to_owned(),
    }
}

/// Whether a larger value of the named extra is better: rates (`..._per_s`) are; times,
/// lateness and costs are not.
pub fn extra_higher_is_better(name: &str) -> bool {
    name.ends_with("_per_s")
}

/// The Markdown table of medians, with greenring's lead over each other design (the other's
/// median ÷ greenring's for times and costs, greenring's ÷ the other's for rates, which are
/// marked "↑"), so a ratio above 1 means greenring is ahead in every row. Rows with extras
/// get a second table of their medians, with greenring's lead on each.
pub fn table(outcomes: &[Outcome]) -> String {
    let has = |imp: Impl| {
        outcomes
            .iter()
            .any(|o| o.series.iter().any(|s| s.imp == imp))
    };
    let columns: Vec<Impl> = COLUMNS
        .into_iter()
        .filter(|&imp| imp != Impl::GreenringHooks || has(imp))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | unit | {} | greenring lead: {} |",
        columns
            .iter()
            .map(|&imp| heading(imp))
            .collect::<Vec<_>>()
            .join(" | "),
        columns[1..]
            .iter()
            .map(|imp| match imp {
                Impl::Std => "std",
                other => other.name(),
            })
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "| --- | --- |{}",
        " ---: |".repeat(2 * columns.len() - 1)
    );
    for outcome in outcomes {
        let median_of = |imp: Impl| {
            outcome
                .series
                .iter()
                .find(|s| s.imp == imp)
                .map(|s| s.median())
        };
        let ours = median_of(Impl::Greenring);
        let higher = outcome.workload.higher_is_better;
        let _ = write!(
            out,
            "| {} | {}{} |",
            outcome.workload.title,
            outcome.workload.unit,
            if higher { " ↑" } else { "" }
        );
        for &imp in &columns {
            let cell = median_of(imp).map_or_else(|| "n/a".to_owned(), format_value);
            let _ = write!(out, " {cell} |");
        }
        for imp in &columns[1..] {
            let _ = write!(out, " {} |", lead(ours, median_of(*imp), higher));
        }
        out.push('\n');
    }
    out.push_str(
        "\nRatios: greenring's lead, above 1 when greenring is ahead (the other's median ÷ \
         greenring's; greenring's ÷ the other's for rates, marked ↑).\n",
    );
    out.push_str(&hooks_ratios(outcomes));
    for outcome in outcomes {
        let with_extras: Vec<_> = outcome
            .series
            .iter()
            .filter(|s| !s.extra_medians().is_empty())
            .collect();
        if with_extras.is_empty() {
            continue;
        }
        let names: Vec<&str> = with_extras[0]
            .extra_medians()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let _ = writeln!(out, "\n{}:\n", outcome.workload.title);
        let _ = writeln!(out, "| design | {} |", names.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(names.len()));
        for series in &with_extras {
            let _ = write!(out, "| {} |", series.imp.name());
            for (_, value) in series.extra_medians() {
                let _ = write!(out, " {} |", format_value(value));
            }
            out.push('\n');
        }
        let extra_of = |imp: Impl, name: &str| {
            with_extras
                .iter()
                .find(|s| s.imp == imp)
                .and_then(|s| s.extra_medians().into_iter().find(|(n, _)| *n == name))
                .map(|(_, v)| v)
        };
        if with_extras.iter().any(|s| s.imp == Impl::Greenring) {
            for series in with_extras.iter().filter(|s| s.imp != Impl::Greenring) {
                let _ = write!(out, "| greenring lead over {} |", series.imp.name());
                for name in &names {
                    let cell = lead(
                        extra_of(Impl::Greenring, name),
                        extra_of(series.imp, name),
                        extra_higher_is_better(name),
                    );
                    let _ = write!(out, " {cell} |");
                }
                out.push('\n');
            }
        }
    }
    out.push_str("\nWhich design each workload favours:\n");
    for outcome in outcomes {
        let _ = writeln!(
            out,
            "- {}: {}",
            outcome.workload.title, outcome.workload.favours
        );
    }
    out
}

/// For the rows that ran greenring-hooks: each of its medians (the headline, then the
/// extras) divided by greenring's, std's `net` through the hooks against greenring's own
/// `net` on the same runtime in the same rounds. Empty if no row ran it.
fn hooks_ratios(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let series_of = |imp: Impl| outcome.series.iter().find(|s| s.imp == imp);
        let (Some(ours), Some(hooks)) =
            (series_of(Impl::Greenring), series_of(Impl::GreenringHooks))
        else {
            continue;
        };
        if out.is_empty() {
            out.push_str(
                "\nstd's `net` through the hooks against greenring's own `net`, same runtime, \
                 same rounds: greenring-hooks ÷ greenring (1.00x is a tie; the hooks are behind \
                 below 1 for rates, marked ↑, above 1 for times and CPU):\n\n",
            );
        }
        let workload = outcome.workload;
        let mut names = vec![if workload.higher_is_better {
            format!("{} ↑", workload.unit)
        } else {
            workload.unit.to_owned()
        }];
        let mut cells = vec![quotient(hooks.median(), ours.median())];
        let theirs = hooks.extra_medians();
        for (name, value) in ours.extra_medians() {
            if let Some((_, other)) = theirs.iter().find(|(n, _)| *n == name) {
                names.push(if extra_higher_is_better(name) {
                    format!("{name} ↑")
                } else {
                    name.to_owned()
                });
                cells.push(quotient(*other, value));
            }
        }
        let _ = writeln!(out, "| {} | {} |", workload.title, names.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(names.len()));
        let _ = writeln!(
            out,
            "| greenring-hooks ÷ greenring | {} |\n",
            cells.join(" | ")
        );
    }
    out
}

/// `a ÷ b` as a ratio, or n/a.
fn quotient(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".to_owned()
    }
}

/// A JSON string literal.
fn string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (non-finite values become null).
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "null".to_owned()
    }
}

/// Every sample and median, with the machine, the options and the workloads skipped for a
/// missing program.
pub fn json(
    outcomes: &[Outcome],
    machine: &Machine,
    options: &Options,
    skipped: &[&str],
) -> String {
    let mut out = String::new();
    out.push_str("{\n  \"version\": 1,\n");
    let _ = writeln!(
        out,
        "  \"machine\": {{\"cpu\": {}, \"cpus\": {}, \"kernel\": {}, \"unix_time\": {}}},",
        string(&machine.cpu),
        machine.cpus,
        string(&machine.kernel),
        machine.unix_time
    );
    let only = options.only.as_ref().map_or_else(
        || "null".to_owned(),
        |names| {
            format!(
                "[{}]",
                names
                    .iter()
                    .map(|n| string(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
    let _ = writeln!(
        out,
        "  \"config\": {{\"quick\": {}, \"reps\": {}, \"workers\": {}, \"io_backend\": {}, \"only\": {}, \"skipped\": [{}]}},",
        options.quick,
        options.reps,
        machine.workers,
        string(&machine.io_backend),
        only,
        skipped
            .iter()
            .map(|n| string(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str("  \"workloads\": [\n");
    for (i, outcome) in outcomes.iter().enumerate() {
        let w = outcome.workload;
        let _ = writeln!(
            out,
            "    {{\"name\": {}, \"title\": {}, \"unit\": {}, \"lower_is_better\": {}, \"favours\": {}, \"results\": [",
            string(w.name),
            string(w.title),
            string(w.unit),
            !w.higher_is_better,
            string(w.favours)
        );
        for (j, series) in outcome.series.iter().enumerate() {
            let samples: Vec<String> = series.samples.iter().map(|s| number(s.value)).collect();
            let extra: Vec<String> = series
                .extra_medians()
                .iter()
                .map(|(n, v)| format!("{}: {}", string(n), number(*v)))
                .collect();
            let _ = write!(
                out,
                "      {{\"impl\": {}, \"median\": {}, \"samples\": [{}], \"extra\": {{{}}}}}",
                string(series.imp.name()),
                number(series.median()),
                samples.join(", "),
                extra.join(", ")
            );
            out.push_str(if j + 1 < outcome.series.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        out.push_str(if i + 1 < outcomes.len() {
            "    ]},\n"
        } else {
            "    ]}\n"
        });
    }
    out.push_str("  ]\n}\n");
    out
}

fn color(imp: Impl) -> &'static str {
    match imp {
        Impl::Greenring => "#2e8b57",
        Impl::Tokio => "#4169e1",
        Impl::Std => "#b8860b",
        Impl::Corosensei => "#8b008b",
        Impl::GreenringHooks => "#8fbc8f",
    }
}

/// A horizontal bar chart: per workload, each design's median relative to the fastest
/// design of that workload (for rates, the best rate ÷ this one: time per item relative to
/// the fastest), on a log scale (1x = fastest), labelled with the medians.
pub fn svg(outcomes: &[Outcome], machine: &Machine) -> String {
    const WIDTH: f64 = 960.0;
    const LEFT: f64 = 300.0;
    const BAR: f64 = 16.0;
    const GAP: f64 = 14.0;
    const TOP: f64 = 70.0;
    let decades = 4.0; // 1x .. 10,000x
    let plot = WIDTH - LEFT - 150.0;
    let rows: usize = outcomes.iter().map(|o| o.series.len()).sum();
    let height = TOP + rows as f64 * BAR + outcomes.len() as f64 * (GAP + BAR) + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\">greenring vs tokio vs std threads: time \
         relative to the fastest (log scale, shorter is better)</text>\n\
         <text x=\"10\" y=\"42\" fill=\"#555\">{} ({} CPUs), Linux {}, {} workers, greenring \
         I/O on {}</text>",
        escape(&machine.cpu),
        machine.cpus,
        escape(&machine.kernel),
        machine.workers,
        machine.io_backend
    );
    for k in 0..=decades as usize {
        let x = LEFT + plot * k as f64 / decades;
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}x</text>",
            TOP - 8.0,
            height - 40.0,
            height - 25.0,
            10u64.pow(k as u32)
        );
    }
    let mut y = TOP;
    for outcome in outcomes {
        // For rates the best is the largest, and each bar is best ÷ rate: how much longer
        // per item than the best design, as for the times.
        let higher = outcome.workload.higher_is_better;
        let medians = outcome
            .series
            .iter()
            .map(|s| s.median())
            .filter(|m| *m > 0.0);
        let best = if higher {
            medians.fold(f64::NEG_INFINITY, f64::max)
        } else {
            medians.fold(f64::INFINITY, f64::min)
        };
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{}</text>",
            y + BAR * 0.8,
            escape(outcome.workload.title)
        );
        y += BAR;
        for series in &outcome.series {
            let median = series.median();
            let ratio = if best.is_finite() && median > 0.0 {
                if higher {
                    best / median
                } else {
                    median / best
                }
            } else {
                1.0
            };
            let width = (ratio.log10() / decades).clamp(0.0, 1.0) * plot + 2.0;
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
                 <rect x=\"{LEFT}\" y=\"{}\" width=\"{width:.1}\" height=\"{}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{}\">{} {} ({:.2}x)</text>",
                LEFT - 6.0,
                y + BAR * 0.75,
                series.imp.name(),
                y + 1.0,
                BAR - 2.0,
                color(series.imp),
                LEFT + width + 4.0,
                y + BAR * 0.75,
                format_value(median),
                escape(outcome.workload.unit),
                ratio
            );
            y += BAR;
        }
        y += GAP;
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Sample;
    use crate::Series;

    fn echo_outcome(designs: &[(Impl, f64, f64)]) -> Outcome {
        let workload = crate::WORKLOADS
            .iter()
            .find(|w| w.name == "tcp_echo_external")
            .unwrap();
        Outcome {
            workload,
            series: designs
                .iter()
                .map(|&(imp, rate, p99)| Series {
                    imp,
                    samples: vec![Sample {
                        value: rate,
                        extra: vec![("p99_us", p99)],
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn the_table_shows_greenring_hooks_only_when_it_ran() {
        let without = table(&[echo_outcome(&[
            (Impl::Greenring, 100.0, 10.0),
            (Impl::Tokio, 50.0, 10.0),
            (Impl::Std, 25.0, 10.0),
        ])]);
        assert!(without.starts_with(
            "| workload | unit | greenring | tokio | std threads | corosensei | \
             greenring lead: tokio | std | corosensei |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        ));
        assert!(!without.contains("greenring-hooks"));
        let with = table(&[echo_outcome(&[
            (Impl::Greenring, 100.0, 10.0),
            (Impl::GreenringHooks, 90.0, 12.0),
            (Impl::Tokio, 50.0, 10.0),
            (Impl::Std, 25.0, 10.0),
        ])]);
        assert!(with.contains("| corosensei | greenring-hooks | greenring lead: tokio |"));
        assert!(
            with.contains("| greenring-hooks ÷ greenring | 0.90x | 1.20x |"),
            "{with}"
        );
    }
}
