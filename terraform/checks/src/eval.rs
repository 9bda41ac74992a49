//! Evaluates a module's locals and module-call arguments the way Terraform
//! would, with placeholders for what only a real plan knows.
//!
//! - `var.X`: the value given to [`Evaluator::new`], else the variable's
//!   default, else the string `var.X`.
//! - `module.M.O`: the string `module.M.O` (`module.M["k"].O` for a module
//!   with `for_each`, `module.M[0].O` with `count`), for every output `O`
//!   declared in the called module's `outputs.tf`.
//! - `path.root` / `path.module`: the strings `path.root` / `path.module`.
//! - the few Terraform functions the composition uses.
//!
//! Locals are evaluated to a fixed point; a local that cannot be evaluated
//! (it refers to a resource, or to something undefined) keeps its error,
//! reported only when a check asks for it.

use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Expression, Map, Value};

use crate::tree::{Module, Tree, attribute, label};

/// One module, evaluated.
#[derive(Debug)]
pub struct Evaluator {
    module: Module,
    vars: Map<String, Value>,
    locals: Map<String, Value>,
    local_errors: BTreeMap<String, String>,
    modules: Map<String, Value>,
    module_errors: BTreeMap<String, String>,
}

impl Evaluator {
    /// Evaluates the module in `dir` with these variable values (others take
    /// their defaults).
    pub fn new(tree: &Tree, dir: &str, overrides: &[(&str, Value)]) -> Result<Evaluator, String> {
        let module = tree.module(dir)?;
        let empty = context(&Map::new(), &Map::new(), &Map::new());
        let mut vars = Map::new();
        for variable in module.blocks("variable") {
            let name = label(variable, 0).to_owned();
            let value = match attribute(variable.body(), "default") {
                Some(default) => default.evaluate(&empty).map_err(|err| {
                    format!("{dir}: default of variable {name} does not evaluate: {err}")
                })?,
                None => Value::String(format!("var.{name}")),
            };
            vars.insert(name, value);
        }
        for (name, value) in overrides {
            if !vars.contains_key(*name) {
                return Err(format!("{dir}: variable {name} is not declared"));
            }
            vars.insert((*name).to_owned(), value.clone());
        }

        let mut evaluator = Evaluator {
            module,
            vars,
            locals: Map::new(),
            local_errors: BTreeMap::new(),
            modules: Map::new(),
            module_errors: BTreeMap::new(),
        };
        evaluator.fixed_point(tree);
        Ok(evaluator)
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    fn context(&self) -> Context<'static> {
        context(&self.vars, &self.locals, &self.modules)
    }

    fn fixed_point(&mut self, tree: &Tree) {
        let locals: Vec<(String, Expression)> = self
            .module
            .locals()
            .map(|attribute| (attribute.key().to_owned(), attribute.expr().clone()))
            .collect();
        let calls: Vec<Block> = self.module.blocks("module").cloned().collect();
        loop {
            let mut progress = false;
            let ctx = self.context();
            let mut new_locals = Vec::new();
            for (name, expr) in &locals {
                if self.locals.contains_key(name) {
                    continue;
                }
                match expr.evaluate(&ctx) {
                    Ok(value) => new_locals.push((name.clone(), value)),
                    Err(err) => {
                        self.local_errors.insert(name.clone(), err.to_string());
                    }
                }
            }
            let mut new_modules = Vec::new();
            for call in &calls {
                let name = label(call, 0).to_owned();
                if self.modules.contains_key(&name) {
                    continue;
                }
                match self.module_placeholder(tree, call, &ctx) {
                    Ok(value) => new_modules.push((name, value)),
                    Err(err) => {
                        self.module_errors.insert(name, err);
                    }
                }
            }
            for (name, value) in new_locals {
                self.local_errors.remove(&name);
                self.locals.insert(name, value);
                progress = true;
            }
            for (name, value) in new_modules {
                self.module_errors.remove(&name);
                self.modules.insert(name, value);
                progress = true;
            }
            if !progress {
                break;
            }
        }
    }

    /// `module.NAME` as an object of placeholder outputs (an object of such
    /// objects with `for_each`, an array with `count`).
    fn module_placeholder(
        &self,
        tree: &Tree,
        call: &Block,
        ctx: &Context,
    ) -> Result<Value, String> {
        let name = label(call, 0);
        let source = self.module.source_dir(call)?;
        let outputs: Vec<String> = tree
            .module(&source)
            .map_err(|err| format!("module {name}: {err}"))?
            .blocks("output")
            .map(|output| label(output, 0).to_owned())
            .collect();
        let instance = |prefix: String| -> Value {
            Value::Object(
                outputs
                    .iter()
                    .map(|output| (output.clone(), Value::String(format!("{prefix}.{output}"))))
                    .collect(),
            )
        };
        if let Some(for_each) = attribute(call.body(), "for_each") {
            let keys = for_each_keys(&for_each.evaluate(ctx).map_err(|err| err.to_string())?)?;
            Ok(Value::Object(
                keys.into_iter()
                    .map(|key| {
                        let value = instance(format!("module.{name}[\"{key}\"]"));
                        (key, value)
                    })
                    .collect(),
            ))
        } else if let Some(count) = attribute(call.body(), "count") {
            let count = count.evaluate(ctx).map_err(|err| err.to_string())?;
            let count = count
                .as_u64()
                .ok_or_else(|| format!("count of module {name} is not a number: {count}"))?;
            Ok(Value::Array(
                (0..count)
                    .map(|index| instance(format!("module.{name}[{index}]")))
                    .collect(),
            ))
        } else {
            Ok(instance(format!("module.{name}")))
        }
    }

    /// The value of `local.NAME`.
    pub fn local(&self, name: &str) -> Result<&Value, String> {
        self.locals
            .get(name)
            .ok_or_else(|| match self.local_errors.get(name) {
                Some(err) => format!("{}: local.{name} does not evaluate: {err}", self.module.dir),
                None => format!("{}: local.{name} is not defined", self.module.dir),
            })
    }

    /// The keys of a `for_each` module call (empty for a module without one).
    pub fn module_keys(&self, module: &str) -> Result<Vec<String>, String> {
        let call = self.call(module)?;
        match attribute(call.body(), "for_each") {
            Some(for_each) => {
                for_each_keys(&for_each.evaluate(&self.context()).map_err(|err| {
                    format!("{}: for_each of module {module}: {err}", self.module.dir)
                })?)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Whether a module call is instantiated (its `count` is not 0).
    pub fn module_enabled(&self, module: &str) -> Result<bool, String> {
        let call = self.call(module)?;
        match attribute(call.body(), "count") {
            Some(count) => {
                let value = count.evaluate(&self.context()).map_err(|err| {
                    format!("{}: count of module {module}: {err}", self.module.dir)
                })?;
                Ok(value.as_u64() != Some(0))
            }
            None => Ok(true),
        }
    }

    fn call(&self, module: &str) -> Result<&Block, String> {
        self.module
            .block("module", &[module])
            .ok_or_else(|| format!("{}: module \"{module}\" is not called", self.module.dir))
    }

    /// The value of argument `argument` of module call `module`; for a
    /// `for_each` call, of its instance `each_key`. `Ok(None)` when the
    /// argument is not given.
    pub fn module_argument(
        &self,
        module: &str,
        each_key: Option<&str>,
        argument: &str,
    ) -> Result<Option<Value>, String> {
        let call = self.call(module)?;
        let Some(expr) = attribute(call.body(), argument) else {
            return Ok(None);
        };
        let mut ctx = self.context();
        if let Some(key) = each_key {
            let for_each = attribute(call.body(), "for_each")
                .ok_or_else(|| format!("{}: module {module} has no for_each", self.module.dir))?
                .evaluate(&ctx)
                .map_err(|err| {
                    format!("{}: for_each of module {module}: {err}", self.module.dir)
                })?;
            let value = match &for_each {
                Value::Object(map) => map.get(key).cloned(),
                Value::Array(items) => items
                    .iter()
                    .find(|item| item.as_str() == Some(key))
                    .cloned(),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "{}: module {module} has no instance \"{key}\"",
                    self.module.dir
                )
            })?;
            let mut each = Map::new();
            each.insert("key".to_owned(), Value::String(key.to_owned()));
            each.insert("value".to_owned(), value);
            ctx.declare_var("each", Value::Object(each));
        }
        expr.evaluate(&ctx).map(Some).map_err(|err| {
            let instance = each_key.map_or(String::new(), |key| format!("[\"{key}\"]"));
            format!(
                "{}: argument {argument} of module {module}{instance} does not evaluate: {err}",
                self.module.dir
            )
        })
    }

    /// Any expression of the module (a resource's attribute, a
    /// precondition), with its variables, locals and module outputs.
    pub fn evaluate(&self, expr: &Expression) -> Result<Value, String> {
        self.evaluate_with(expr, &[])
    }

    /// [`Evaluator::evaluate`] with more names declared, e.g. `each` for one
    /// `for_each` instance or `self` for a postcondition. `can(…)` is
    /// Terraform's: true when its argument evaluates, false when it fails.
    pub fn evaluate_with(
        &self,
        expr: &Expression,
        extra: &[(&str, Value)],
    ) -> Result<Value, String> {
        let mut ctx = self.context();
        for (name, value) in extra {
            ctx.declare_var(*name, value.clone());
        }
        resolve_can(expr, &ctx)
            .evaluate(&ctx)
            .map_err(|err| format!("{}: {expr} does not evaluate: {err}", self.module.dir))
    }

    /// The values of a variable given to this module (overrides, defaults
    /// and `var.X` placeholders), by name.
    pub fn vars(&self) -> &Map<String, Value> {
        &self.vars
    }

    /// The value of a variable (given, default, or the `var.X` placeholder).
    pub fn var(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }
}

/// `expr` with every `can(x)` replaced by `true` when `x` evaluates in
/// `ctx` and by `false` when it does not (an argument that fails must not
/// fail the whole expression, as it would through an ordinary function).
fn resolve_can(expr: &Expression, ctx: &Context) -> Expression {
    use hcl::expr::{BinaryOp, Conditional, FuncCall, Operation, UnaryOp};
    match expr {
        Expression::FuncCall(call) if call.name.name.as_str() == "can" && call.args.len() == 1 => {
            let inner = resolve_can(&call.args[0], ctx);
            Expression::Bool(inner.evaluate(ctx).is_ok())
        }
        Expression::FuncCall(call) => {
            let mut call: FuncCall = (**call).clone();
            call.args = call.args.iter().map(|arg| resolve_can(arg, ctx)).collect();
            Expression::FuncCall(Box::new(call))
        }
        Expression::Parenthesis(inner) => {
            Expression::Parenthesis(Box::new(resolve_can(inner, ctx)))
        }
        Expression::Operation(operation) => Expression::Operation(Box::new(match &**operation {
            Operation::Unary(op) => {
                Operation::Unary(UnaryOp::new(op.operator, resolve_can(&op.expr, ctx)))
            }
            Operation::Binary(op) => Operation::Binary(BinaryOp::new(
                resolve_can(&op.lhs_expr, ctx),
                op.operator,
                resolve_can(&op.rhs_expr, ctx),
            )),
        })),
        Expression::Conditional(cond) => Expression::Conditional(Box::new(Conditional::new(
            resolve_can(&cond.cond_expr, ctx),
            resolve_can(&cond.true_expr, ctx),
            resolve_can(&cond.false_expr, ctx),
        ))),
        other => other.clone(),
    }
}

fn for_each_keys(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Object(map) => Ok(map.keys().cloned().collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("for_each set element is not a string: {item}"))
            })
            .collect(),
        other => Err(format!("for_each is neither a map nor a set: {other}")),
    }
}

fn context(
    vars: &Map<String, Value>,
    locals: &Map<String, Value>,
    modules: &Map<String, Value>,
) -> Context<'static> {
    let mut ctx = Context::new();
    ctx.declare_var("var", Value::Object(vars.clone()));
    ctx.declare_var("local", Value::Object(locals.clone()));
    ctx.declare_var("module", Value::Object(modules.clone()));
    let mut path = Map::new();
    for key in ["root", "module", "cwd"] {
        path.insert(key.to_owned(), Value::String(format!("path.{key}")));
    }
    ctx.declare_var("path", Value::Object(path));

    let any = || ParamType::Any;
    let string = || ParamType::String;
    ctx.declare_func(
        "merge",
        FuncDef::builder().variadic_param(any()).build(merge),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder().variadic_param(any()).build(concat),
    );
    ctx.declare_func("title", FuncDef::builder().param(string()).build(title));
    ctx.declare_func("tostring", FuncDef::builder().param(any()).build(tostring));
    ctx.declare_func(
        "lookup",
        FuncDef::builder()
            .params([any(), string(), any()])
            .build(lookup),
    );
    ctx.declare_func("keys", FuncDef::builder().param(any()).build(keys));
    ctx.declare_func("length", FuncDef::builder().param(any()).build(length));
    ctx.declare_func(
        "trimprefix",
        FuncDef::builder()
            .params([string(), string()])
            .build(trimprefix),
    );
    ctx.declare_func(
        "replace",
        FuncDef::builder()
            .params([string(), string(), string()])
            .build(replace),
    );
    ctx.declare_func("toset", FuncDef::builder().param(any()).build(toset));
    ctx.declare_func("values", FuncDef::builder().param(any()).build(values));
    ctx.declare_func("sum", FuncDef::builder().param(any()).build(sum));
    ctx.declare_func(
        "regex",
        FuncDef::builder().params([string(), string()]).build(regex),
    );
    ctx
}

/// A list's distinct elements (Terraform's sets are unordered; order kept).
fn toset(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(items) => {
            let mut set: Vec<Value> = Vec::new();
            for item in items {
                if !set.contains(item) {
                    set.push(item.clone());
                }
            }
            Ok(Value::Array(set))
        }
        other => Err(format!("toset: not a list: {other}")),
    }
}

fn values(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Object(map) => Ok(Value::Array(map.values().cloned().collect())),
        other => Err(format!("values: not a map: {other}")),
    }
}

fn sum(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else {
        return Err(format!("sum: not a list: {}", args[0]));
    };
    let mut total = 0.0;
    for item in items {
        total += item
            .as_f64()
            .ok_or_else(|| format!("sum: not a number: {item}"))?;
    }
    Ok(if total.fract() == 0.0 && total >= 0.0 {
        Value::from(total as u64)
    } else {
        Value::from(total)
    })
}

/// Terraform's `regex`: the match, or an error when there is none (which
/// `can` turns into false).
fn regex(args: FuncArgs) -> Result<Value, String> {
    let pattern = args[0].as_str().unwrap_or_default();
    let text = args[1].as_str().unwrap_or_default();
    let re = ::regex::Regex::new(pattern).map_err(|err| format!("regex: {err}"))?;
    re.find(text)
        .map(|found| Value::String(found.as_str().to_owned()))
        .ok_or_else(|| format!("regex: {pattern:?} does not match {text:?}"))
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut merged = Map::new();
    for arg in args.iter() {
        match arg {
            Value::Object(map) => merged.extend(map.clone()),
            Value::Null => {}
            other => return Err(format!("merge: not an object: {other}")),
        }
    }
    Ok(Value::Object(merged))
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut joined = Vec::new();
    for arg in args.iter() {
        match arg {
            Value::Array(items) => joined.extend(items.clone()),
            other => return Err(format!("concat: not a list: {other}")),
        }
    }
    Ok(Value::Array(joined))
}

fn title(args: FuncArgs) -> Result<Value, String> {
    let text = args[0].as_str().unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    let mut start = true;
    for ch in text.chars() {
        if start {
            out.extend(ch.to_uppercase());
        } else {
            out.push(ch);
        }
        start = ch.is_whitespace();
    }
    Ok(Value::String(out))
}

fn tostring(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::String(text) => Ok(Value::String(text.clone())),
        Value::Number(number) => Ok(Value::String(number.to_string())),
        Value::Bool(flag) => Ok(Value::String(flag.to_string())),
        other => Err(format!("tostring: cannot convert {other}")),
    }
}

fn lookup(args: FuncArgs) -> Result<Value, String> {
    let key = args[1].as_str().unwrap_or_default();
    match &args[0] {
        Value::Object(map) => Ok(map.get(key).cloned().unwrap_or_else(|| args[2].clone())),
        other => Err(format!("lookup: not a map: {other}")),
    }
}

fn keys(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Object(map) => Ok(Value::Array(
            map.keys().cloned().map(Value::String).collect(),
        )),
        other => Err(format!("keys: not a map: {other}")),
    }
}

fn length(args: FuncArgs) -> Result<Value, String> {
    let length = match &args[0] {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        Value::String(text) => text.chars().count(),
        other => return Err(format!("length: not a collection: {other}")),
    };
    Ok(Value::from(length))
}

fn trimprefix(args: FuncArgs) -> Result<Value, String> {
    let text = args[0].as_str().unwrap_or_default();
    let prefix = args[1].as_str().unwrap_or_default();
    Ok(Value::String(
        text.strip_prefix(prefix).unwrap_or(text).to_owned(),
    ))
}

fn replace(args: FuncArgs) -> Result<Value, String> {
    let text = args[0].as_str().unwrap_or_default();
    let from = args[1].as_str().unwrap_or_default();
    let to = args[2].as_str().unwrap_or_default();
    Ok(Value::String(text.replace(from, to)))
}
