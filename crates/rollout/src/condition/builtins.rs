//! The functions conditions may call: expr's builtins that analysis templates use, plus
//! Argo's own `asInt` / `asFloat` / `isNaN` / `isInf` / `default`.

pub(crate) struct Spec {
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    /// The second argument is a predicate over `#` (`all(result, # < 1)`).
    pub predicate: bool,
}

const fn f(name: &'static str, min_args: usize, max_args: usize) -> Spec {
    Spec {
        name,
        min_args,
        max_args,
        predicate: false,
    }
}

const fn p(name: &'static str, min_args: usize) -> Spec {
    Spec {
        name,
        min_args,
        max_args: 2,
        predicate: true,
    }
}

const ANY: usize = usize::MAX;

pub(crate) const BUILTINS: &[Spec] = &[
    f("len", 1, 1),
    p("all", 2),
    p("any", 2),
    p("none", 2),
    p("one", 2),
    p("filter", 2),
    p("map", 2),
    p("count", 1),
    p("sum", 1),
    p("find", 2),
    f("abs", 1, 1),
    f("ceil", 1, 1),
    f("floor", 1, 1),
    f("round", 1, 1),
    f("max", 1, ANY),
    f("min", 1, ANY),
    f("mean", 1, 1),
    f("median", 1, 1),
    f("int", 1, 1),
    f("float", 1, 1),
    f("string", 1, 1),
    f("isNaN", 1, 1),
    f("isInf", 1, 2),
    f("asInt", 1, 1),
    f("asFloat", 1, 1),
    f("default", 2, 2),
    f("first", 1, 1),
    f("last", 1, 1),
    f("keys", 1, 1),
    f("values", 1, 1),
    f("lower", 1, 1),
    f("upper", 1, 1),
    f("trim", 1, 1),
    f("type", 1, 1),
];

pub(crate) fn lookup(name: &str) -> Option<&'static Spec> {
    BUILTINS.iter().find(|s| s.name == name)
}
