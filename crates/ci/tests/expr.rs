//! GitHub Actions expressions, table-driven from "Evaluate expressions in workflows and
//! actions" (docs.github.com) and the behaviour of GitHub's runner.

use serde_json::{json, Value};
use slipway_ci::expr::{
    self, parse_condition, parse_condition_in, parse_in, Allowed, Context, Host, NoHost, Status,
    Template,
};

fn ctx() -> Context {
    Context::new()
        .with(
            "github",
            json!({
                "ref": "refs/heads/main",
                "event_name": "push",
                "sha": "abc123",
                "event": {
                    "commits": [
                        {"message": "first", "author": {"name": "Mona"}},
                        {"message": "second", "author": {"name": "Hubot"}},
                        {"author": {"name": "NoMessage"}}
                    ],
                    "issue": {"labels": [{"name": "bug"}, {"name": "Help Wanted"}]}
                },
                "actor": "octocat"
            }),
        )
        .with("env", json!({"Greeting": "Hello", "EMPTY": "", "N": "3"}))
        .with("matrix", json!({"os": "ubuntu-latest", "node": 20}))
        .with(
            "steps",
            json!({"build-step": {"outputs": {"version": "1.2.3"}, "outcome": "success"}}),
        )
        .with("needs", json!({"build": {"result": "success", "outputs": {"json": "[1,2]"}}}))
        .with(
            "vars",
            json!({
                "fruits": [{"name": "apple", "qty": 1}, {"name": "orange", "qty": 2}, {"name": "pear"}],
                "obj": {"a": {"x": 1}, "b": {"x": 2}},
                "list": ["Bug", "help", 3, null, true]
            }),
        )
}

fn eval(src: &str) -> Value {
    expr::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(&ctx(), &NoHost)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn literals() {
    let cases: &[(&str, Value)] = &[
        ("null", json!(null)),
        ("true", json!(true)),
        ("false", json!(false)),
        ("711", json!(711)),
        ("-9.2", json!(-9.2)),
        ("0xff", json!(255)),
        ("0xFF", json!(255)),
        ("-2.99e-2", json!(-0.0299)),
        ("1e3", json!(1000)),
        ("0o17", json!(15)),
        ("'It''s open source!'", json!("It's open source!")),
        ("''", json!("")),
        (
            "'${{ not an expression }}'",
            json!("${{ not an expression }}"),
        ),
        ("  ( 'x' )  ", json!("x")),
    ];
    for (src, want) in cases {
        assert_eq!(&eval(src), want, "{src}");
    }
}

#[test]
fn operators_and_coercion() {
    let cases: &[(&str, bool)] = &[
        // Coercion to numbers when types differ (the docs' table).
        ("null == 0", true),
        ("true == 1", true),
        ("false == 0", true),
        ("'' == 0", true),
        ("'1' == 1", true),
        ("' 123456.789 ' == 123456.789", true),
        ("' +12 ' == 12", true),
        ("'0xff' == 255", true),
        ("'abc' == 0", false),
        ("'abc' != 0", true),
        ("null == false", true),
        ("'true' == true", false), // 'true' → NaN
        ("1 == 1.0", true),
        ("0 == -0", true),
        // Strings ignore case.
        ("'ABC' == 'abc'", true),
        ("'abc' != 'ABD'", true),
        ("'abc' < 'ABD'", true),
        ("'b' > 'A'", true),
        ("'a' >= 'A'", true),
        // Relational.
        ("1 < 2", true),
        ("2 <= 2", true),
        ("3 > 2.5", true),
        ("3 >= 4", false),
        ("1.002 > 1.001", true),
        ("false < true", true),
        ("null < 1", true),
        ("null <= null", true),
        ("null < null", false),
        ("'10' > 9", true),
        ("'x' < 1", false),
        ("'x' >= 1", false),
        // Arrays and objects: equal only to themselves, never ordered.
        ("vars.obj == vars.obj", true),
        ("vars.obj == vars.list", false),
        ("vars.list > vars.list", false),
        ("vars.list == 0", false),
        ("fromJSON('{}') == fromJSON('{}')", false),
        // Not and grouping.
        ("!false", true),
        ("!0", true),
        ("!''", true),
        ("!null", true),
        ("!'false'", false),
        ("!vars.list", false),
        ("!!1", true),
        ("!(1 == 2)", true),
        ("!1 == false", true), // `!` binds tighter than `==`
        // Precedence: relational over equality over && over ||.
        ("1 < 2 == true", true),
        ("true || false && false", true),
        ("(true || false) && false", false),
        ("false && true || true", true),
        // Contexts and properties.
        ("github.event_name == 'push'", true),
        ("GITHUB.Event_Name == 'PUSH'", true),
        ("github['event_name'] == 'push'", true),
        ("github.event.commits[0].message == 'first'", true),
        ("github.event.commits[1]['AUTHOR'].name == 'hubot'", true),
        ("github.missing == null", true),
        ("github.missing.deeper == null", true),
        ("github.event.commits[7] == null", true),
        ("github.event.commits['0'].message == 'first'", true),
        ("steps.build-step.outputs.version == '1.2.3'", true),
        ("env.greeting == 'hello'", true),
        ("env.N > 2", true),
        ("matrix.node == '20'", true),
        ("needs.build.result == 'success'", true),
        ("inputs.anything == null", true),
    ];
    for (src, want) in cases {
        assert_eq!(eval(src), json!(want), "{src}");
    }
}

#[test]
fn and_or_return_operands() {
    let cases: &[(&str, Value)] = &[
        ("'a' && 'b'", json!("b")),
        ("'' && 'b'", json!("")),
        ("0 && 'b'", json!(0)),
        ("null || 'default'", json!("default")),
        ("'x' || 'default'", json!("x")),
        ("env.EMPTY || 'fallback'", json!("fallback")),
        (
            "github.ref == 'refs/heads/main' && 'prod' || 'dev'",
            json!("prod"),
        ),
        (
            "github.ref == 'refs/heads/dev' && 'prod' || 'dev'",
            json!("dev"),
        ),
        ("false || 0", json!(0)),
        ("vars.list && 1", json!(1)),
        ("fromJSON('[]') || 1", json!([])), // empty arrays are truthy
    ];
    for (src, want) in cases {
        assert_eq!(&eval(src), want, "{src}");
    }
    // Short-circuit: the right side is not evaluated (fromJSON would fail).
    assert_eq!(eval("false && fromJSON('not json')"), json!(false));
    assert_eq!(eval("true || fromJSON('not json')"), json!(true));
}

#[test]
fn falsy_values() {
    for v in [json!(false), json!(0), json!(-0.0), json!(""), json!(null)] {
        assert!(!expr::truthy(&v), "{v}");
    }
    for v in [
        json!(true),
        json!(1),
        json!("0"),
        json!("false"),
        json!([]),
        json!({}),
    ] {
        assert!(expr::truthy(&v), "{v}");
    }
}

#[test]
fn object_filters() {
    let cases: &[(&str, Value)] = &[
        ("vars.fruits.*.name", json!(["apple", "orange", "pear"])),
        ("vars.fruits[*].name", json!(["apple", "orange", "pear"])),
        ("vars.fruits.*.qty", json!([1, 2])), // missing properties are skipped
        ("github.event.commits.*.message", json!(["first", "second"])),
        (
            "github.event.commits.*.author.name",
            json!(["Mona", "Hubot", "NoMessage"]),
        ),
        ("vars.obj.*.x", json!([1, 2])),
        ("vars.obj.*", json!([{"x": 1}, {"x": 2}])),
        (
            "github.event.issue.labels.*.name",
            json!(["bug", "Help Wanted"]),
        ),
        ("github.event_name.*", json!(null)),
        ("fromJSON('[[1,2],[3]]').*.*", json!([1, 2, 3])),
        ("fromJSON('[[1,2],[3]]').*[0]", json!([1, 3])),
        (
            "contains(github.event.issue.labels.*.name, 'HELP WANTED')",
            json!(true),
        ),
        ("contains(vars.fruits.*.name, 'banana')", json!(false)),
        (
            "join(vars.fruits.*.name, ', ')",
            json!("apple, orange, pear"),
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&eval(src), want, "{src}");
    }
}

#[test]
fn functions() {
    let cases: &[(&str, Value)] = &[
        // contains: strings (case-insensitive) and arrays (loose equality).
        ("contains('Hello world', 'llo')", json!(true)),
        ("contains('Hello world', 'LLO')", json!(true)),
        ("contains('Hello world', 'xyz')", json!(false)),
        ("contains(vars.list, 'bug')", json!(true)),
        ("contains(vars.list, 'HELP')", json!(true)),
        ("contains(vars.list, '3')", json!(true)),
        ("contains(vars.list, 'he')", json!(false)),
        ("contains(vars.list, null)", json!(true)),
        (
            "contains(fromJSON('[\"push\", \"pull_request\"]'), github.event_name)",
            json!(true),
        ),
        ("contains(123, 2)", json!(true)),
        ("contains(vars.obj, 'a')", json!(false)),
        // startsWith / endsWith.
        ("startsWith('Hello world', 'He')", json!(true)),
        ("startsWith('Hello world', 'he')", json!(true)),
        ("startsWith('Hello world', 'world')", json!(false)),
        ("startsWith(github.ref, 'refs/heads/')", json!(true)),
        ("endsWith('Hello world', 'ld')", json!(true)),
        ("endsWith('Hello world', 'LD')", json!(true)),
        ("endsWith('Hello world', 'He')", json!(false)),
        ("endsWith(12, 2)", json!(true)),
        ("startsWith(vars.list, 'B')", json!(false)),
        // format, with escaped braces.
        (
            "format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')",
            json!("Hello Mona the Octocat"),
        ),
        (
            "format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
            json!("{Hello Mona the Octocat!}"),
        ),
        ("format('{0}{0}{1}', 'a', 'b')", json!("aab")),
        ("format('{{0}}', 'a')", json!("{0}")),
        ("format('{0}-{1}-{2}', 1, true, null)", json!("1-true-")),
        ("format('{0}', 2.5)", json!("2.5")),
        ("format('no args')", json!("no args")),
        // join.
        ("join(vars.fruits.*.name)", json!("apple,orange,pear")),
        ("join(fromJSON('[\"a\", \"b\"]'), ', ')", json!("a, b")),
        ("join(vars.list, '|')", json!("Bug|help|3||true")),
        ("join('single')", json!("single")),
        ("join(fromJSON('[]'))", json!("")),
        // toJSON / fromJSON.
        (
            "toJSON(matrix)",
            json!("{\n  \"os\": \"ubuntu-latest\",\n  \"node\": 20\n}"),
        ),
        ("toJSON('x')", json!("\"x\"")),
        ("toJSON(null)", json!("null")),
        (
            "toJSON(vars.fruits.*.name)",
            json!("[\n  \"apple\",\n  \"orange\",\n  \"pear\"\n]"),
        ),
        (
            "fromJSON('{\"a\": [1, 2.5, true]}')",
            json!({"a": [1, 2.5, true]}),
        ),
        ("fromJSON('1.0')", json!(1)),
        ("fromJSON('true')", json!(true)),
        ("fromJSON(needs.build.outputs.json)[1]", json!(2)),
        ("fromJSON(env.N) == 3", json!(true)),
        ("fromJSON(toJSON(matrix)).os", json!("ubuntu-latest")),
        // Function names are case-insensitive.
        ("CONTAINS('abc', 'B')", json!(true)),
        ("tojson(1)", json!("1")),
        ("FromJson('[1]')[0]", json!(1)),
    ];
    for (src, want) in cases {
        assert_eq!(&eval(src), want, "{src}");
    }
}

struct TestHost(Status);

impl Host for TestHost {
    fn status(&self) -> Status {
        self.0
    }
    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        if patterns.iter().any(|p| p.starts_with('/')) {
            return Err("pattern outside the workspace".into());
        }
        Ok(format!("hash:{}", patterns.join("+")))
    }
}

#[test]
fn host_functions() {
    let c = ctx();
    let e = expr::parse("hashFiles('**/package-lock.json', 'x.txt')").unwrap();
    assert_eq!(
        e.eval(&c, &TestHost(Status::Success)).unwrap(),
        json!("hash:**/package-lock.json+x.txt")
    );
    let err = expr::parse("hashFiles('/etc/passwd')")
        .unwrap()
        .eval(&c, &TestHost(Status::Success))
        .unwrap_err();
    assert!(err.message.contains("outside the workspace"), "{err}");
    assert!(expr::parse("hashFiles('x')")
        .unwrap()
        .eval(&c, &NoHost)
        .is_err());

    let table = [
        (Status::Success, [true, true, false, false]),
        (Status::Failure, [false, true, false, true]),
        (Status::Cancelled, [false, true, true, false]),
    ];
    for (status, want) in table {
        for (f, w) in ["success()", "always()", "cancelled()", "failure()"]
            .iter()
            .zip(want)
        {
            let got = expr::parse(f).unwrap().eval(&c, &TestHost(status)).unwrap();
            assert_eq!(got, json!(w), "{f} with {status:?}");
        }
    }
}

#[test]
fn conditions() {
    let c = ctx();
    let cases: &[(&str, Status, bool)] = &[
        ("", Status::Success, true),
        ("", Status::Failure, false),
        ("github.event_name == 'push'", Status::Success, true),
        ("${{ github.event_name == 'push' }}", Status::Success, true),
        (
            "  ${{ github.event_name == 'push' }}  ",
            Status::Success,
            true,
        ),
        ("github.event_name == 'push'", Status::Failure, false), // implicit success() &&
        (
            "failure() && github.event_name == 'push'",
            Status::Failure,
            true,
        ),
        ("${{ always() }}", Status::Cancelled, true),
        ("cancelled()", Status::Cancelled, true),
        ("!cancelled()", Status::Failure, true),
        ("success() || failure()", Status::Failure, true),
        (
            "steps.build-step.outcome == 'failure'",
            Status::Success,
            false,
        ),
        ("'false'", Status::Success, true), // a non-empty string is truthy
        ("matrix.node", Status::Success, true),
        ("env.EMPTY", Status::Success, false),
    ];
    for (src, status, want) in cases {
        let cond = parse_condition(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(
            cond.eval(&c, &TestHost(*status)).unwrap(),
            *want,
            "{src} with {status:?}"
        );
    }
    // Text around the expression would make GitHub see a (truthy) string: refuse it.
    let err = parse_condition("${{ false }} && ${{ false }}").unwrap_err();
    assert!(err.message.contains("one expression"), "{err}");
    let err = parse_condition("x ${{ false }}").unwrap_err();
    assert_eq!(err.column, 1);
}

#[test]
fn templates() {
    let c = ctx();
    let cases: &[(&str, Value)] = &[
        ("plain text", json!("plain text")),
        ("${{ github.sha }}", json!("abc123")),
        (
            "v${{ matrix.node }}-${{ matrix.os }}",
            json!("v20-ubuntu-latest"),
        ),
        ("${{ matrix.node }}", json!(20)), // a lone expression keeps its type
        ("${{ fromJSON('[1,2]') }}", json!([1, 2])),
        (" ${{ matrix.node }}", json!(" 20")),
        (
            "${{ null }}|${{ true }}|${{ 1.5 }}|${{ 0xff }}",
            json!("|true|1.5|255"),
        ),
        ("${{ 'a }} b' }}!", json!("a }} b!")), // `}}` inside a string literal
        ("${{ format('{{0}}') }}", json!("{0}")),
        (
            "echo \"${{ github.ACTOR }}\"\necho ${{ env.greeting }}",
            json!("echo \"octocat\"\necho Hello"),
        ),
        ("${{ vars.obj }} ${{ vars.list }}", json!("Object Array")),
    ];
    for (src, want) in cases {
        let t = Template::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(&t.eval(&c, &NoHost).unwrap(), want, "{src}");
    }
    assert!(Template::parse("no expressions").unwrap().is_literal());
    assert_eq!(Template::parse("a${{ 1 }}b").unwrap().segments().len(), 3);
    assert_eq!(
        Template::parse("${{ matrix.os }}")
            .unwrap()
            .render(&c, &NoHost)
            .unwrap(),
        "ubuntu-latest"
    );
}

#[test]
fn parse_errors_have_columns() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "An expression was expected"),
        ("1 ==", 5, "Unexpected end of expression"),
        ("github.", 8, "Unexpected end of expression"),
        ("(1 == 1", 8, "Unexpected end of expression"),
        ("1 == 1)", 7, "Unexpected symbol: ')'"),
        ("\"double\"", 1, "Unexpected symbol: '\"'"),
        ("'unterminated", 1, "unterminated string"),
        ("a = b", 3, "Unexpected symbol: '='"),
        ("1 + 2", 3, "Unexpected symbol: '+'"),
        ("foo.bar", 1, "Unrecognized named-value: 'foo'"),
        ("github.ref == bar", 15, "Unrecognized named-value: 'bar'"),
        ("nope('x')", 1, "Unrecognized function: 'nope'"),
        (
            "contains('x')",
            1,
            "Too few parameters supplied: 'contains'",
        ),
        ("toJSON(1, 2)", 1, "Too many parameters supplied: 'toJSON'"),
        ("success(1)", 1, "Too many parameters supplied: 'success'"),
        ("join()", 1, "Too few parameters supplied: 'join'"),
        ("github..ref", 8, "Unexpected symbol: '.'"),
        ("github[0", 9, "Unexpected end of expression"),
        ("1 2", 3, "Unexpected symbol: '2'"),
        ("0xZZ", 1, "Unexpected symbol: '0xZZ'"),
        ("contains('a', 'b',)", 19, "Unexpected symbol: ')'"),
    ];
    for (src, col, msg) in cases {
        let err = expr::parse(src).expect_err(src);
        assert_eq!(err.column, *col, "{src}: {err}");
        assert_eq!(err.line, 1, "{src}: {err}");
        assert!(err.message.contains(msg), "{src}: {err}");
    }
    // Depth limit rather than a stack overflow.
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(expr::parse(&deep).unwrap_err().message.contains("depth"));
    let nots = format!("{}true", "!".repeat(200));
    assert!(expr::parse(&nots).is_err());
}

#[test]
fn evaluation_errors() {
    let c = ctx();
    let cases: &[(&str, usize, &str)] = &[
        ("fromJSON('{bad')", 1, "Error parsing fromJson"),
        ("1 == 1 && fromJSON('')", 11, "Error parsing fromJson"),
        (
            "format('{0} {1}', 'a')",
            1,
            "references more arguments than were supplied",
        ),
        ("format('{0', 'a')", 1, "format string is invalid"),
        ("format('}', 'a')", 1, "format string is invalid"),
        ("format('{x}', 'a')", 1, "format string is invalid"),
    ];
    for (src, col, msg) in cases {
        let err = expr::parse(src).unwrap().eval(&c, &NoHost).expect_err(src);
        assert_eq!(err.column, *col, "{src}: {err}");
        assert!(err.message.contains(msg), "{src}: {err}");
    }
}

#[test]
fn template_errors_are_located_in_the_text() {
    let err = Template::parse("run: ${{ github.ref == }}").unwrap_err();
    assert_eq!((err.line, err.column), (1, 24), "{err}");
    assert!(err.message.contains("Unexpected end of expression"));
    let err = Template::parse("line one\n  echo ${{ nope.x }}").unwrap_err();
    assert_eq!((err.line, err.column), (2, 12), "{err}");
    assert_eq!(err.message, "Unrecognized named-value: 'nope'");
    let err = Template::parse("a ${{ 'x' ").unwrap_err();
    assert_eq!((err.line, err.column), (1, 3), "{err}");
    assert!(err.message.contains("not closed"));
    assert_eq!(
        err.to_string(),
        format!("line 1, column 3: {}", err.message)
    );
    // Evaluation errors too.
    let err = Template::parse("x\n  ${{ fromJSON('{') }}")
        .unwrap()
        .eval(&ctx(), &NoHost)
        .unwrap_err();
    assert_eq!((err.line, err.column), (2, 7), "{err}");
}

#[test]
fn allowed_names_depend_on_the_place() {
    // jobs.<id>.if: github, needs, vars, inputs; status functions; no hashFiles.
    let job_if = Allowed {
        contexts: &["github", "needs", "vars", "inputs"],
        functions: &["always", "success", "failure", "cancelled"],
    };
    assert!(parse_condition_in("needs.build.result == 'success' && always()", &job_if).is_ok());
    let err = parse_condition_in("steps.x.outcome == 'success'", &job_if).unwrap_err();
    assert_eq!(err.message, "Unrecognized named-value: 'steps'");
    assert_eq!(err.column, 1);
    let err = parse_in("hashFiles('x')", &job_if).unwrap_err();
    assert_eq!(err.message, "Unrecognized function: 'hashFiles'");
    // env: at workflow level: no status functions.
    let env = Allowed {
        contexts: &["github", "secrets", "inputs", "vars"],
        functions: &[],
    };
    let err = Template::parse_in("x ${{ success() }}", &env).unwrap_err();
    assert_eq!(
        (err.column, err.message.as_str()),
        (7, "Unrecognized function: 'success'")
    );
    assert!(Template::parse_in("${{ SECRETS.token }}", &env).is_ok());
    // Validate an already parsed expression elsewhere.
    let e = expr::parse("matrix.os == 'x' || github.ref").unwrap();
    assert_eq!(e.contexts(), vec!["matrix", "github"]);
    assert!(e.validate(&env).is_err());
    assert!(!e.has_status_function());
    assert!(expr::parse("!cancelled()").unwrap().has_status_function());
}

#[test]
fn contexts_are_case_insensitive_and_mutable() {
    let mut c = Context::new().with("ENV", json!({"A": "1"}));
    assert_eq!(c.get("env"), Some(&json!({"A": "1"})));
    c.get_mut("Env").unwrap()["B"] = json!("2");
    let e = expr::parse("env.b == 2").unwrap();
    assert_eq!(e.eval(&c, &NoHost).unwrap(), json!(true));
    assert_eq!(expr::to_string(&json!(1.0)), "1");
    assert_eq!(expr::to_string(&json!(null)), "");
}
