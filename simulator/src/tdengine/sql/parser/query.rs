//! The parser's query half: constants (numbers, strings, `NOW ± duration`), durations, the SELECT of
//! queries and topics, and WHERE expressions. Statements are in the parent module.

use super::Parser;
use crate::tdengine::error::TdResult;
use crate::tdengine::sql::ast::*;
use crate::tdengine::sql::lexer::{lex, unquote_str, Tok};

impl Parser<'_> {
    pub(super) fn literal_list(&mut self) -> TdResult<Vec<Lit>> {
        self.expect_sym("(")?;
        let mut out = Vec::new();
        if self.eat_sym(")")? {
            return Ok(out);
        }
        loop {
            out.push(self.literal()?);
            if !self.eat_sym(",")? {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(out)
    }

    /// A constant: number (with sign), string, NULL, TRUE/FALSE, `NOW [± duration…]`, `NOW()`.
    pub(super) fn literal(&mut self) -> TdResult<Lit> {
        let pos = self.cur.start;
        let value = match self.cur.tok {
            Tok::Str => {
                let v = Literal::Str(unquote_str(self.text()));
                self.advance()?;
                v
            }
            Tok::Num => self.number(false)?,
            Tok::Sym if self.is_sym("-") || self.is_sym("+") => {
                let neg = self.is_sym("-");
                self.advance()?;
                if self.cur.tok != Tok::Num {
                    return Err(self.error("expected a number"));
                }
                self.number(neg)?
            }
            Tok::Word => {
                let w = self.text();
                if w.eq_ignore_ascii_case("null") {
                    self.advance()?;
                    Literal::Null
                } else if w.eq_ignore_ascii_case("true") {
                    self.advance()?;
                    Literal::Bool(true)
                } else if w.eq_ignore_ascii_case("false") {
                    self.advance()?;
                    Literal::Bool(false)
                } else if w.eq_ignore_ascii_case("now") || w.eq_ignore_ascii_case("today") {
                    let today = w.eq_ignore_ascii_case("today");
                    self.advance()?;
                    if self.eat_sym("(")? {
                        self.expect_sym(")")?;
                    }
                    let mut offset_ns: i128 = if today {
                        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
                        -(now.rem_euclid(86_400_000_000_000))
                    } else {
                        0
                    };
                    while self.is_sym("+") || self.is_sym("-") {
                        let neg = self.is_sym("-");
                        self.advance()?;
                        let d = self.duration_ns()?;
                        offset_ns += if neg { -d } else { d };
                    }
                    Literal::Now { offset_ns }
                } else {
                    return Err(self.error("expected a value"));
                }
            }
            _ => return Err(self.error("expected a value")),
        };
        Ok(Lit { value, pos })
    }

    fn number(&mut self, neg: bool) -> TdResult<Literal> {
        let t = self.text();
        let v = if t.contains(['.', 'e', 'E']) {
            let f: f64 = t.parse().map_err(|_| self.error("invalid number"))?;
            Literal::Float(if neg { -f } else { f })
        } else {
            let i: i128 = t.parse().map_err(|_| self.error("invalid number"))?;
            Literal::Int(if neg { -i } else { i })
        };
        self.advance()?;
        Ok(v)
    }

    /// A duration like `1s`, `5m`, `10a` in nanoseconds.
    fn duration_ns(&mut self) -> TdResult<i128> {
        if self.cur.tok != Tok::Dur {
            return Err(self.error("expected a duration like 1s"));
        }
        let t = self.text();
        let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
        let n: i128 = t[..split].parse().map_err(|_| self.error("invalid duration"))?;
        let unit: i128 = match &t[split..] {
            "b" => 1,
            "u" => 1_000,
            "a" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 7 * 86_400_000_000_000,
            _ => return Err(self.error("unknown time unit (b, u, a, s, m, h, d, w)")),
        };
        // A duration beyond i64 nanoseconds is no timestamp offset TDengine could store either.
        let ns = n
            .checked_mul(unit)
            .filter(|ns| ns.abs() <= i64::MAX as i128)
            .ok_or_else(|| self.error("duration out of range"))?;
        self.advance()?;
        Ok(ns)
    }

    fn select_items(&mut self) -> TdResult<Vec<SelectItem>> {
        let mut items = Vec::new();
        loop {
            if self.eat_sym("*")? {
                items.push(SelectItem::Star);
            } else if self.is_kw("count") {
                self.advance()?;
                self.expect_sym("(")?;
                let col = if self.eat_sym("*")? {
                    None
                } else {
                    Some(self.ident()?)
                };
                self.expect_sym(")")?;
                items.push(SelectItem::Count(col));
            } else if self.cur.tok == Tok::Word && lex(self.sql, self.cur.end)?.tok == Tok::Sym && {
                let next = lex(self.sql, self.cur.end)?;
                &self.sql[next.start..next.end] == "("
            } {
                let name = self.text().to_ascii_lowercase();
                self.advance()?;
                self.expect_sym("(")?;
                self.expect_sym(")")?;
                items.push(SelectItem::Func(name));
            } else {
                let mut name = self.ident()?;
                // `t.col` qualified columns: keep the column.
                if self.eat_sym(".")? {
                    name = self.ident()?;
                }
                let implicit_alias =
                    self.cur.tok == Tok::Quoted || (self.cur.tok == Tok::Word && !self.is_kw("from"));
                let alias = if self.eat_kw("as")? || implicit_alias {
                    Some(self.ident()?)
                } else {
                    None
                };
                items.push(SelectItem::Column { name, alias });
            }
            if !self.eat_sym(",")? {
                return Ok(items);
            }
        }
    }

    pub(super) fn select(&mut self) -> TdResult<Select> {
        self.expect_kw("select")?;
        let items = self.select_items()?;
        if items.iter().all(|i| matches!(i, SelectItem::Func(_))) && !self.is_kw("from") {
            return Ok(Select {
                items,
                from: None,
                filter: None,
                order_by: Vec::new(),
                limit: None,
                offset: None,
            });
        }
        self.expect_kw("from")?;
        let from = Some(self.qual_name()?);
        let filter = if self.eat_kw("where")? {
            Some(self.expr()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_kw("order")? {
            self.expect_kw("by")?;
            loop {
                let col = self.ident()?;
                let desc = if self.eat_kw("desc")? {
                    true
                } else {
                    self.eat_kw("asc")?;
                    false
                };
                order_by.push((col, desc));
                if !self.eat_sym(",")? {
                    break;
                }
            }
        }
        let (mut limit, mut offset) = (None, None);
        if self.eat_kw("limit")? {
            let a = self.uint()?;
            if self.eat_sym(",")? {
                offset = Some(a);
                limit = Some(self.uint()?);
            } else {
                limit = Some(a);
                if self.eat_kw("offset")? {
                    offset = Some(self.uint()?);
                }
            }
        }
        Ok(Select {
            items,
            from,
            filter,
            order_by,
            limit,
            offset,
        })
    }

    pub(super) fn expr(&mut self) -> TdResult<Expr> {
        let mut l = self.and_expr()?;
        while self.eat_kw("or")? {
            l = Expr::Or(Box::new(l), Box::new(self.and_expr()?));
        }
        Ok(l)
    }

    fn and_expr(&mut self) -> TdResult<Expr> {
        let mut l = self.not_expr()?;
        while self.eat_kw("and")? {
            l = Expr::And(Box::new(l), Box::new(self.not_expr()?));
        }
        Ok(l)
    }

    fn not_expr(&mut self) -> TdResult<Expr> {
        if self.eat_kw("not")? {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.cmp_expr()
    }

    fn cmp_expr(&mut self) -> TdResult<Expr> {
        let l = self.operand()?;
        let op = match self.text() {
            _ if self.cur.tok != Tok::Sym => {
                if self.eat_kw("is")? {
                    let negated = self.eat_kw("not")?;
                    self.expect_kw("null")?;
                    return Ok(Expr::IsNull {
                        expr: Box::new(l),
                        negated,
                    });
                }
                if self.eat_kw("between")? {
                    let low = self.operand()?;
                    self.expect_kw("and")?;
                    let high = self.operand()?;
                    return Ok(Expr::Between {
                        expr: Box::new(l),
                        low: Box::new(low),
                        high: Box::new(high),
                    });
                }
                if self.eat_kw("in")? {
                    self.expect_sym("(")?;
                    let mut list = vec![self.operand()?];
                    while self.eat_sym(",")? {
                        list.push(self.operand()?);
                    }
                    self.expect_sym(")")?;
                    return Ok(Expr::In {
                        expr: Box::new(l),
                        list,
                    });
                }
                return Ok(l);
            }
            "=" | "==" => CmpOp::Eq,
            "<>" | "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return Ok(l),
        };
        self.advance()?;
        let r = self.operand()?;
        Ok(Expr::Cmp(Box::new(l), op, Box::new(r)))
    }

    fn operand(&mut self) -> TdResult<Expr> {
        if self.eat_sym("(")? {
            let e = self.expr()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        let is_value_word = self.cur.tok == Tok::Word
            && ["null", "true", "false", "now", "today"]
                .iter()
                .any(|w| self.text().eq_ignore_ascii_case(w));
        if self.cur.tok == Tok::Word && !is_value_word || self.cur.tok == Tok::Quoted {
            let mut name = self.ident()?;
            if self.eat_sym(".")? {
                name = self.ident()?;
            }
            return Ok(Expr::Column(name));
        }
        Ok(Expr::Lit(self.literal()?))
    }
}
