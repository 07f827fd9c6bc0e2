//! Checks of a scenario's `[thresholds]`: expressions, metrics, label filters and the
//! complexities they name.

use std::collections::BTreeSet;

use lvt_schema::Complexity;

use super::checks::{Checker, complexity_name};
use super::locate::Seg::{self, Index as I, Key as K};
use crate::scenario::threshold::{ThresholdExpr, nearest};
use crate::scenario::{Label, Scenario};

impl Checker<'_, '_> {
    pub(super) fn check_thresholds(&mut self, s: &Scenario) {
        let complexities: BTreeSet<Complexity> = s.prompts.iter().map(|p| p.complexity).collect();
        let prompt_ids: BTreeSet<&str> = s.prompts.iter().map(|p| p.id.as_str()).collect();
        for (i, threshold) in s.thresholds.iter().enumerate() {
            let expr_path = [K("thresholds"), I(i), K("expr")];
            if let Err(error) = ThresholdExpr::parse(&threshold.expr) {
                let offset = self.expr_offset(&expr_path, &threshold.expr, error.offset);
                let diagnostic = self.locator.diagnostic(
                    self.label,
                    offset,
                    error.message,
                    Some(error.expected),
                    error.hint,
                );
                self.diagnostics.push(diagnostic);
            }
            for (key, value) in &threshold.r#where {
                let key_path = [K("thresholds"), I(i), K("where"), K(key.as_str())];
                let Some(label) = Label::ALL.into_iter().find(|l| l.as_str() == key) else {
                    let hint = match nearest(key, Label::ALL.map(Label::as_str)) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => "thresholds filter sessions by their labels only".to_string(),
                    };
                    let offset = self.locator.key_offset(&key_path);
                    self.error_at(
                        offset,
                        format!("unknown label `{key}` in `where`"),
                        "one of the labels target, complexity, prompt, start",
                        &hint,
                    );
                    continue;
                };
                match label {
                    Label::Complexity => {
                        self.check_where_complexity(&key_path, value, &complexities)
                    }
                    Label::Prompt => {
                        if !prompt_ids.contains(value.as_str()) {
                            let declared: Vec<&str> = prompt_ids.iter().copied().collect();
                            let hint = match nearest(value, declared.iter().copied()) {
                                Some(best) => format!("did you mean `{best}`?"),
                                None => "this threshold would never match a session".to_string(),
                            };
                            self.error(
                                &key_path,
                                format!("no prompt has id `{value}`"),
                                &format!("one of the declared prompt ids: {}", declared.join(", ")),
                                &hint,
                            );
                        }
                    }
                    Label::Start => {
                        if value != "cold" && value != "warm" {
                            self.error(
                                &key_path,
                                format!("unknown start kind `{value}`"),
                                "cold or warm",
                                "a session is cold when it is the first on its target or follows a pause of 60 s or more",
                            );
                        }
                    }
                    Label::Target => self.check_where_target(&key_path, value, &s.targets),
                }
            }
        }
    }

    pub(super) fn check_where_complexity(
        &mut self,
        path: &[Seg<'_>],
        value: &str,
        declared: &BTreeSet<Complexity>,
    ) {
        let names: Vec<&str> = declared.iter().map(|c| complexity_name(*c)).collect();
        let known = ["low", "medium", "high"];
        if !known.contains(&value) {
            let hint = match nearest(value, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "complexities are low, medium and high".to_string(),
            };
            self.error(
                path,
                format!("unknown complexity `{value}`"),
                &format!("one of the declared complexities: {}", names.join(", ")),
                &hint,
            );
        } else if !names.contains(&value) {
            self.error(
                path,
                format!("no prompt has complexity `{value}`"),
                &format!("one of the declared complexities: {}", names.join(", ")),
                &format!(
                    "add a prompt with complexity = \"{value}\" or change the filter: this threshold would never match a session"
                ),
            );
        }
    }

    /// Where, in the file, byte `offset` of a threshold expression is: inside the string when
    /// it is written as a plain one-line string, at the string otherwise.
    pub(super) fn expr_offset(&self, path: &[Seg<'_>], expr: &str, offset: usize) -> usize {
        match self.locator.value_source(path) {
            Some((start, raw)) => {
                let plain = raw.len() >= 2
                    && !raw.starts_with("\"\"\"")
                    && !raw.starts_with("'''")
                    && raw.get(1..raw.len() - 1) == Some(expr);
                if plain { start + 1 + offset } else { start }
            }
            None => self.locator.value_offset(path),
        }
    }
}
