use proptest::prelude::*;
use serde_json::json;

use super::ast::{BinOp, Expr, Kind, NegatableOp, UnOp};
use super::{Condition, Env, Value};

/// Parses and evaluates `src` with `result` bound to `result`, then compares with `expect`:
/// `true`, `false`, or the error message (`column 10: ...`, parse or evaluation).
#[track_caller]
fn check(src: &str, result: serde_json::Value, expect: &str) {
    let got = match Condition::parse(src) {
        Err(e) => e.to_string(),
        Ok(c) => match c.eval(&Env::result(result)) {
            Ok(b) => b.to_string(),
            Err(e) => e.to_string(),
        },
    };
    assert_eq!(got, expect, "condition: {src}");
}

/// Like `check` with any value as the result (NaN, infinities).
#[track_caller]
fn check_value(src: &str, result: Value, expect: &str) {
    let c = Condition::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let got = match c.eval(&Env::result(result)) {
        Ok(b) => b.to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(got, expect, "condition: {src}");
}

/// Evaluates to a value, printed with `{:?}`-free Display.
#[track_caller]
fn value(src: &str) -> String {
    let c = Condition::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    match c.eval_value(&Env::result(Value::Nil)) {
        Ok(v) => format!("{v}"),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn argo_documentation_examples() {
    check("result[0] < 0.001", json!([0.0002]), "true");
    check("result[0] < 0.001", json!([0.002]), "false");
    check("result[0] >= 0.95", json!([0.97]), "true");
    check("result[0] >= 0.95", json!([0.9]), "false");
    check("len(result) > 0", json!([1]), "true");
    check("len(result) > 0", json!([]), "false");
    check("result == true", json!(true), "true");
    check("result == true", json!(false), "false");
    check(
        "result.successful == true",
        json!({"successful": true}),
        "true",
    );
    check(
        "result.successful == true",
        json!({"successful": false}),
        "false",
    );
    check("all(result, # < 0.01)", json!([0.001, 0.002]), "true");
    check("all(result, # < 0.01)", json!([0.001, 0.2]), "false");
    check("all(result, {# < 0.01})", json!([0.001, 0.002]), "true");
    check("all(result, {# < 0.01})", json!([]), "true");
    check("asFloat(result) > 0.5", json!("0.75"), "true");
    check("asFloat(result) > 0.5", json!("0.25"), "false");
    check("asInt(result) == 3", json!("3"), "true");
    check(
        "result.status == \"ok\" && result.count > 3",
        json!({"status": "ok", "count": 4}),
        "true",
    );
    check(
        "result.status == \"ok\" && result.count > 3",
        json!({"status": "ok", "count": 3}),
        "false",
    );
    check(
        "result.status == 'ok' and result.count > 3.0",
        json!({"status": "ok", "count": 4}),
        "true",
    );
    check("result < 2000", json!(1999), "true");
    check("result >= 0", json!(0), "true");
    check("result[0] > 0.9 || result[0] == 0", json!([0]), "true");
    check("default(result, 0) >= 0.9", json!(null), "false");
    check("default(result, 1) >= 0.9", json!(null), "true");
}

#[test]
fn nan_and_infinity() {
    check_value(
        "isNaN(result) || result < 0.05",
        Value::Float(f64::NAN),
        "true",
    );
    check_value("isNaN(result) || result < 0.05", Value::Float(0.01), "true");
    check_value("isNaN(result) || result < 0.05", Value::Float(0.5), "false");
    check_value("result < 0.05", Value::Float(f64::NAN), "false");
    check_value("result >= 0.05", Value::Float(f64::NAN), "false");
    check_value("isInf(result)", Value::Float(f64::INFINITY), "true");
    check_value("isInf(result, -1)", Value::Float(f64::INFINITY), "false");
    check_value("isInf(result, -1)", Value::Float(f64::NEG_INFINITY), "true");
    check_value(
        "isNaN(asFloat(result))",
        Value::String("NaN".into()),
        "true",
    );
    check_value(
        "asFloat(result) > 1e300",
        Value::String("+Inf".into()),
        "true",
    );
}

#[test]
fn literals() {
    assert_eq!(value("1e-3"), "0.001");
    assert_eq!(value("1.5E+2"), "150");
    assert_eq!(value("1_000"), "1000");
    assert_eq!(value("'it\\'s'"), "it's");
    assert_eq!(value("\"a\\tb\\u0041\""), "a\tbA");
    assert_eq!(value("`raw\\n`"), "raw\\n");
    assert_eq!(value("[1, 2.5, 'x', nil, true]"), "[1 2.5 x <nil> true]");
    assert_eq!(value("{a: 1, 'b c': [2]}"), "map[a:1 b c:[2]]");
    assert_eq!(value("{a: 1}.a"), "1");
    assert_eq!(value("1..4"), "[1 2 3 4]");
    // Past i64, an integer literal becomes a float, as in Go.
    assert_eq!(value("9223372036854775808"), "9223372036854776000");
}

#[test]
fn precedence() {
    // expr's table: ** over unary minus, * over +, + over comparisons, comparisons over
    // and, and over or, ternary loosest, ?? tightest.
    assert_eq!(value("1 + 2 * 3"), "7");
    assert_eq!(value("(1 + 2) * 3"), "9");
    assert_eq!(value("2 ** 3 ** 2"), "512");
    assert_eq!(value("2 ^ 3"), "8");
    assert_eq!(value("-2 ** 2"), "-4");
    assert_eq!(value("10 - 4 - 3"), "3");
    assert_eq!(value("7 / 2"), "3.5");
    assert_eq!(value("7 % 4"), "3");
    assert_eq!(value("true || false && false"), "true");
    assert_eq!(value("(true || false) && false"), "false");
    assert_eq!(value("not true == false"), "true");
    assert_eq!(value("!true || true"), "true");
    assert_eq!(value("1 < 2 == true"), "true");
    assert_eq!(value("1 + 1 in [2, 3]"), "true");
    assert_eq!(value("true ? 1 : 2 + 10"), "1");
    assert_eq!(value("false ? 1 : true ? 2 : 3"), "2");
    assert_eq!(value("1 > 2 || 3 > 2 ? 'y' : 'n'"), "y");
    assert_eq!(value("nil ?? 2 + 1"), "3");
    assert_eq!(value("1 .. 2 + 1"), "[1 2 3]");
    assert_eq!(value("'a' + 'b' == 'ab'"), "true");
    assert_eq!(value("2 * -3"), "-6");
    assert_eq!(value("- - 3"), "3");
}

#[test]
fn members_indexes_and_slices() {
    let r = json!({"a": {"b": [10, 20, 30]}, "k-x": 1});
    check("result.a.b[1] == 20", r.clone(), "true");
    check("result['a'][\"b\"][-1] == 30", r.clone(), "true");
    check("result[\"k-x\"] == 1", r.clone(), "true");
    check("result.missing == nil", r.clone(), "true");
    check("result.missing?.deeper == nil", r.clone(), "true");
    check("result.missing?.deeper.still == nil", r.clone(), "true");
    check(
        "result.missing.deeper == nil",
        r.clone(),
        "column 15: cannot fetch deeper from nil",
    );
    check("result.a.b[1:] == [20, 30]", r.clone(), "true");
    check("result.a.b[:2] == [10, 20]", r.clone(), "true");
    check("result.a.b[-2:] == [20, 30]", r.clone(), "true");
    check("result.a.b[1:2][0] == 20", r.clone(), "true");
    check(
        "result.a.b[3] == 1",
        r.clone(),
        "column 11: index 3 out of range (length 3)",
    );
    check("'hello'[1:3] == 'el'", r.clone(), "true");
    check("'a' in result", r.clone(), "true");
    check("'z' not in result", r.clone(), "true");
    check("20 in result.a.b", r, "true");
}

#[test]
fn string_operators() {
    let r = json!("canary-v2");
    check("result startsWith 'canary'", r.clone(), "true");
    check("result endsWith 'v2'", r.clone(), "true");
    check("result contains 'ry-'", r.clone(), "true");
    check("result not contains 'stable'", r.clone(), "true");
    check("result matches '^canary-v[0-9]+$'", r.clone(), "true");
    check("result not matches '^stable'", r.clone(), "true");
    check(
        "result matches '('",
        r,
        "column 16: invalid regular expression: found open group without closing ')'",
    );
}

#[test]
fn builtins() {
    let r = json!([0.5, 0.25, 1, 4]);
    check("sum(result) == 5.75", r.clone(), "true");
    check("mean(result) == 1.4375", r.clone(), "true");
    check("median(result) == 0.75", r.clone(), "true");
    check("max(result) == 4 && min(result) == 0.25", r.clone(), "true");
    check("max(1, 7, 3) == 7", r.clone(), "true");
    check("any(result, # > 3)", r.clone(), "true");
    check("none(result, # > 4)", r.clone(), "true");
    check("one(result, # >= 4)", r.clone(), "true");
    check("count(result, # < 1) == 2", r.clone(), "true");
    check("len(filter(result, # < 1)) == 2", r.clone(), "true");
    check("map(result, # * 2)[3] == 8", r.clone(), "true");
    check("sum(result, # * 2) == 11.5", r.clone(), "true");
    check("find(result, # > 0.9) == 1", r.clone(), "true");
    check(
        "first(result) == 0.5 && last(result) == 4",
        r.clone(),
        "true",
    );
    check("abs(-3) == 3 && abs(-2.5) == 2.5", r.clone(), "true");
    check(
        "ceil(1.2) == 2 && floor(1.8) == 1 && round(1.5) == 2",
        r.clone(),
        "true",
    );
    check("int('42') + int(2.9) == 44", r.clone(), "true");
    check("float(1) / 4 == 0.25", r.clone(), "true");
    check("string(12) + string(0.5) == '120.5'", r.clone(), "true");
    check(
        "lower('AbC') == 'abc' && upper('a') == 'A' && trim(' x ') == 'x'",
        r.clone(),
        "true",
    );
    check("type(result) == 'array'", r.clone(), "true");
    check("all(result, # > 0 && any([1, 2], # > 1))", r, "true");
    check(
        "all(result, .ok)",
        json!([{"ok": true}, {"ok": true}]),
        "true",
    );
    check(
        "any(result, #.code >= 500)",
        json!([{"code": 200}, {"code": 503}]),
        "true",
    );
    check("len(keys(result)) == 2", json!({"a": 1, "b": 2}), "true");
    check("count([true, false, true]) == 2", json!(null), "true");
}

#[test]
fn type_errors_are_located() {
    // A one-element vector is not a number: Argo users write result[0].
    check(
        "result < 0.05",
        json!([0.01]),
        "column 8: cannot compare array and number",
    );
    check(
        "result.st > 3 && true",
        json!({"st": "x"}),
        "column 11: cannot compare string and number",
    );
    check(
        "result.status < 3",
        json!({"status": "ok"}),
        "column 15: cannot compare string and number",
    );
    check(
        "result + 1 > 0",
        json!("a"),
        "column 8: cannot add string and number (+)",
    );
    check(
        "result && true",
        json!(1),
        "column 8: && expects a bool, got number",
    );
    check(
        "not result",
        json!(1),
        "column 1: not expects a bool, got number",
    );
    check(
        "result",
        json!(1),
        "column 1: condition must be a bool, got number (1)",
    );
    check(
        "result[0]",
        json!([0.5]),
        "column 1: condition must be a bool, got number (0.5)",
    );
    check(
        "len(result) > 0",
        json!(3),
        "column 1: len expects a string, array or map, got number",
    );
    check(
        "result.a > 0",
        json!(1),
        "column 7: cannot fetch a from number",
    );
    check("5 % 0 == 0", json!(1), "column 3: integer divide by zero");
    check(
        "5.5 % 2 == 0",
        json!(1),
        "column 5: % needs integers, got 5.5 and 2",
    );
    check(
        "asInt(result) > 0",
        json!("x1"),
        "column 1: cannot convert \"x1\" to int",
    );
    check("other > 0", json!(1), "column 1: unknown name other");
    check(
        "9223372036854775807 + 1 > 0",
        json!(1),
        "column 21: integer overflow",
    );
    check(
        "1..100000000 == nil",
        json!(1),
        "column 2: range 1..100000000 is too large",
    );
}

#[test]
fn parse_errors_are_located() {
    check(
        "result[0] <",
        json!(1),
        "column 12: unexpected end of condition",
    );
    check(
        "result[0] < 0.001)",
        json!(1),
        "column 18: unexpected \")\"",
    );
    check(
        "(result",
        json!(1),
        "column 8: expected \")\", found end of condition",
    );
    check("result @ 1", json!(1), "column 8: unexpected character '@'");
    check("foo(result)", json!(1), "column 1: unknown function foo");
    check(
        "len(result, 2) > 0",
        json!(1),
        "column 1: len takes 1 arguments, got 2",
    );
    check(
        "# > 1",
        json!(1),
        "column 1: # is only allowed inside a predicate such as all(result, # > 0)",
    );
    check("'abc", json!(1), "column 1: unterminated string");
    check(
        "1.5.3 > 1",
        json!(1),
        "column 5: expected a field name, found number 3",
    );
    check("12abc > 1", json!(1), "column 1: invalid number \"12a\"");
    check(
        "true ? 1",
        json!(1),
        "column 9: expected \":\", found end of condition",
    );
    check(
        "result. > 1",
        json!(1),
        "column 8: expected a field name, found \">\"",
    );
    check("", json!(1), "column 1: unexpected end of condition");
    check(
        &"(".repeat(500),
        json!(1),
        "column 101: condition nested too deeply",
    );
}

#[test]
fn other_variables() {
    let c = Condition::parse("result[0] <= threshold && args.service == 'web'").unwrap();
    assert_eq!(c.variables(), ["result", "threshold", "args"]);
    let env = Env::result(vec![0.5])
        .with("threshold", 0.5)
        .with("args", json!({"service": "web"}));
    assert!(c.eval(&env).unwrap());
}

#[test]
fn display_is_fully_parenthesized() {
    let c =
        Condition::parse("not a.b?.c[0] in [1, 2] || x ?? y > -1 ** 2 && all(r, {# > 1})").unwrap();
    assert_eq!(
        c.to_string(),
        "(((not a.b?.c[0]) in [1, 2]) || (((x ?? y) > (-(1 ** 2))) && all(r, {(# > 1)})))"
    );
}

// ---- properties ----

fn leaf() -> impl Strategy<Value = Expr> {
    let e = |kind| Expr { kind, col: 0 };
    prop_oneof![
        any::<i32>().prop_map(move |i| e(Kind::Lit(Value::Int(i64::from(i).abs())))),
        (0.0f64..1e6).prop_map(move |f| e(Kind::Lit(Value::Float(f)))),
        "[a-z \"'\\\\\n]{0,6}".prop_map(move |s| e(Kind::Lit(Value::String(s)))),
        any::<bool>().prop_map(move |b| e(Kind::Lit(Value::Bool(b)))),
        Just(e(Kind::Lit(Value::Nil))),
        prop_oneof![Just("result"), Just("x"), Just("args")]
            .prop_map(move |v| e(Kind::Var(v.into()))),
    ]
}

fn expr_tree() -> impl Strategy<Value = Expr> {
    let e = |kind| Expr { kind, col: 0 };
    let ops = [
        BinOp::Or,
        BinOp::And,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::In,
        BinOp::Contains,
        BinOp::StartsWith,
        BinOp::EndsWith,
        BinOp::Not(NegatableOp::In),
        BinOp::Range,
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Mod,
        BinOp::Pow,
        BinOp::Coalesce,
    ];
    leaf().prop_recursive(4, 32, 3, move |inner| {
        prop_oneof![
            (
                proptest::sample::select(ops.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(move |(op, l, r)| e(Kind::Binary(
                    op,
                    Box::new(l),
                    Box::new(r)
                ))),
            (
                proptest::sample::select(vec![UnOp::Not, UnOp::Neg, UnOp::Plus]),
                inner.clone()
            )
                .prop_map(move |(op, x)| e(Kind::Unary(op, Box::new(x)))),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(move |(c, a, b)| e(Kind::Cond(
                Box::new(c),
                Box::new(a),
                Box::new(b)
            ))),
            (inner.clone(), "[a-z]{1,3}", any::<bool>()).prop_map(move |(o, field, optional)| {
                e(Kind::Member {
                    obj: Box::new(o),
                    field,
                    optional,
                })
            }),
            (inner.clone(), inner.clone()).prop_map(move |(o, i)| {
                e(Kind::Index {
                    obj: Box::new(o),
                    index: Box::new(i),
                    optional: false,
                })
            }),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(move |v| e(Kind::Array(v))),
            (inner.clone(), inner.clone()).prop_map(move |(a, body)| {
                e(Kind::Call("all", vec![a, e(Kind::Closure(Box::new(body)))]))
            }),
            inner
                .clone()
                .prop_map(move |a| e(Kind::Call("len", vec![a]))),
        ]
    })
}

const TOKENS: &[&str] = &[
    "result",
    "x",
    "#",
    ".",
    "?.",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "?",
    "??",
    "!",
    "not",
    "in",
    "and",
    "or",
    "&&",
    "||",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "..",
    "0",
    "1",
    "-1",
    "0.5",
    "1e-3",
    "'s'",
    "nil",
    "true",
    "all",
    "len",
    "map",
    "count",
    "max",
    "matches",
    "'^a'",
    "contains",
    "a",
    "isNaN",
    "default",
    "9223372036854775807",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Printing a tree and parsing it back gives the same printing.
    #[test]
    fn printed_conditions_parse_back(tree in expr_tree()) {
        let printed = tree.to_string();
        let parsed = Condition::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(parsed.to_string(), printed);
    }

    /// Random token soup never panics, in the parser or the evaluator.
    #[test]
    fn random_tokens_never_panic(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 1..14)) {
        let src = tokens.join(" ");
        if let Ok(c) = Condition::parse(&src) {
            for result in [json!([1, 0.5]), json!({"a": 1}), json!("s"), json!(null), json!(3)] {
                let _ = c.eval(&Env::result(result).with("x", json!([[1], {"a": [2]}])));
            }
        }
    }

    /// Arbitrary text never panics either.
    #[test]
    fn random_text_never_panics(src in "\\PC{0,30}") {
        if let Ok(c) = Condition::parse(&src) {
            let _ = c.eval(&Env::result(json!([1, 2])));
        }
    }
}
