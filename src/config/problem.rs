//! What is wrong in a configuration and where: each problem with its byte
//! span and context, rendered as `file:line:col` (or the userdata key).
//! Every validator collects into one `Problems`, so all are reported at
//! once.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

/// One thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub span: Option<Range<usize>>,
    /// "profile 'solr', volume 1 (/mnt/solr)" or empty for file-level keys.
    pub context: String,
    pub message: String,
}

/// Where the validated text came from, to turn byte spans into places.
pub(crate) enum Origin<'a> {
    File {
        path: &'a Path,
        text: &'a str,
    },
    /// Volumes read from userdata; spans point into generated text, so the
    /// place is the userdata key instead.
    Userdata {
        key: &'a str,
    },
    /// A volume built in a program (`Volume::new`): no place to point at.
    Code,
}

impl Origin<'_> {
    /// `path:line:col` (1-based) for a byte offset.
    pub(crate) fn place(&self, span: Option<&Range<usize>>) -> String {
        match self {
            Origin::File { path, text } => match span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("{}:{line}:{col}", path.display())
                }
                None => path.display().to_string(),
            },
            Origin::Userdata { key } => format!("userdata '{key}'"),
            Origin::Code => "Volume::new".to_string(),
        }
    }

    pub(crate) fn render(&self, p: &Problem) -> String {
        let place = self.place(p.span.as_ref());
        if p.context.is_empty() {
            format!("{place}: {}", p.message)
        } else {
            format!("{place}: {}: {}", p.context, p.message)
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[derive(Default)]
pub(super) struct Problems {
    pub(super) list: Vec<Problem>,
}

impl Problems {
    pub(super) fn add(
        &mut self,
        span: Option<Range<usize>>,
        context: &str,
        message: impl Into<String>,
    ) {
        self.list.push(Problem {
            span,
            context: context.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn at<T>(&mut self, v: &Spanned<T>, context: &str, message: impl Into<String>) {
        self.add(Some(v.span()), context, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, t.find('2').unwrap()), (2, 6));
    }
}
