//! Tables as people take them: CSV (RFC 4180: a header row, CRLF line ends, fields with a
//! comma, quote or line break quoted, quotes doubled) and aligned text for a terminal.

/// One CSV field.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A CSV document: the header, then the rows; CRLF line ends.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for line in std::iter::once(header.iter().map(|h| field(h)).collect::<Vec<_>>())
        .chain(rows.iter().map(|r| r.iter().map(|f| field(f)).collect()))
    {
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Display width of a cell: CJK characters take two columns in a terminal.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if (c as u32) >= 0x1100 && !c.is_ascii() {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Aligned text: the header, a rule, the rows; columns separated by two spaces.
pub fn text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(c));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - width(c) + 2;
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_wants() {
        let doc = csv(
            &["a", "b"],
            &[
                vec!["x,y".into(), "say \"hi\"".into()],
                vec!["一号楼".into(), "l1\nl2".into()],
            ],
        );
        assert_eq!(
            doc,
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n一号楼,\"l1\nl2\"\r\n"
        );
    }

    #[test]
    fn text_columns_line_up_with_wide_characters() {
        let t = text(
            &["id", "name"],
            &[
                vec!["一号楼".into(), "x".into()],
                vec!["b".into(), "y".into()],
            ],
        );
        assert_eq!(t, "id      name\n------  ----\n一号楼  x\nb       y\n");
    }
}
