//! Minimal GitHub-flavoured-Markdown builders used by the run report.
//!
//! Label names and free-form summary values come from user data, so cells
//! are escaped: a stray `|` would otherwise split a table column.

/// Escape text for use inside a GFM table cell.
pub(crate) fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Render a table. `right_align[i]` right-aligns column `i` (numbers).
/// Cells must already be escaped with [`cell`] where they hold user text.
pub(crate) fn table(header: &[String], right_align: &[bool], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", header.join(" | "));
    for i in 0..header.len() {
        out.push_str(if right_align.get(i).copied().unwrap_or(false) {
            " ---: |"
        } else {
            " --- |"
        });
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Fenced code block whose fence is longer than any backtick run inside
/// `body` (CommonMark §4.5), so embedded fences cannot end it early.
pub(crate) fn code_block(lang: &str, body: &str) -> String {
    let longest_run = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let body = body.trim_end_matches('\n');
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_fences() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        let t = table(
            &["k".into(), "v".into()],
            &[false, true],
            &[vec!["x".into(), "1".into()]],
        );
        assert_eq!(t, "| k | v |\n| --- | ---: |\n| x | 1 |\n");
        assert_eq!(code_block("toml", "a = 1\n"), "```toml\na = 1\n```\n");
        assert!(code_block("", "x ```` y").starts_with("`````\n"));
    }
}
