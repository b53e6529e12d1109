//! The `#[kest::verified]` attribute. Use it through the `kest` crate, which documents it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{
    Expr, ExprArray, ExprLit, FnArg, GenericArgument, ItemFn, Lit, Meta, Pat, PathArguments,
    ReturnType, Token, Type,
};

/// Runs the function under the Kest verification hook: policies first (the body does not
/// run unless every tier allows), then the body, then a signed lineage entry.
///
/// See the `kest` crate's documentation of `verified` for the parameters.
#[proc_macro_attribute]
pub fn verified(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// A value given directly, or a closure over the arguments.
enum Resolver {
    Value(Expr),
    Closure(Expr),
}

impl Resolver {
    fn new(expr: Expr) -> Self {
        match expr {
            Expr::Closure(_) => Self::Closure(expr),
            other => Self::Value(other),
        }
    }

    /// The expression giving the value, inside the function.
    fn tokens(&self, arguments: &[TokenStream2]) -> TokenStream2 {
        match self {
            Self::Value(expr) => quote! { (#expr) },
            Self::Closure(expr) => quote! { (#expr)(#(&#arguments),*) },
        }
    }
}

#[derive(Default)]
struct Args {
    name: Option<Expr>,
    policies: Vec<Expr>,
    origin: Option<Expr>,
    added_taints: Option<Expr>,
    removed_taints: Option<Expr>,
    trust_override: Option<Expr>,
    classification: Option<Expr>,
    engine: Option<Expr>,
    identity: Option<Expr>,
    trust_evaluator: Option<Expr>,
    user: Option<Resolver>,
    agent: Option<Resolver>,
    task: Option<Resolver>,
    resource_id: Option<Resolver>,
    resource_attrs: Vec<(Expr, Resolver)>,
}

fn parse_args(tokens: TokenStream2) -> syn::Result<Args> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut args = Args::default();
    for meta in metas {
        let Meta::NameValue(pair) = meta else {
            return Err(syn::Error::new(meta.span(), "expected `name = value`"));
        };
        let key = pair
            .path
            .get_ident()
            .map(ToString::to_string)
            .ok_or_else(|| syn::Error::new(pair.path.span(), "expected a parameter name"))?;
        let value = pair.value;
        let once = |slot: &mut Option<Expr>, value: Expr| {
            if slot.is_some() {
                return Err(syn::Error::new(
                    value.span(),
                    format!("`{key}` is given twice"),
                ));
            }
            *slot = Some(value);
            Ok(())
        };
        match key.as_str() {
            "name" => once(&mut args.name, value)?,
            "policy" => match value {
                Expr::Array(ExprArray { elems, .. }) => args.policies.extend(elems),
                other => args.policies.push(other),
            },
            "origin" => once(&mut args.origin, value)?,
            "added_taints" => once(&mut args.added_taints, value)?,
            "removed_taints" => once(&mut args.removed_taints, value)?,
            "trust_override" => once(&mut args.trust_override, value)?,
            "classification" => once(&mut args.classification, value)?,
            "engine" => once(&mut args.engine, value)?,
            "identity" => once(&mut args.identity, value)?,
            "trust_evaluator" => once(&mut args.trust_evaluator, value)?,
            "user" => args.user = Some(Resolver::new(value)),
            "agent" => args.agent = Some(Resolver::new(value)),
            "task" => args.task = Some(Resolver::new(value)),
            "resource_id" => args.resource_id = Some(Resolver::new(value)),
            "resource_attr" => {
                let Expr::Array(array) = value else {
                    return Err(syn::Error::new(
                        value.span(),
                        "expected `resource_attr = [(\"name\", value or closure), ...]`",
                    ));
                };
                for element in array.elems {
                    let Expr::Tuple(tuple) = element else {
                        return Err(syn::Error::new(
                            element.span(),
                            "expected `(\"name\", value or closure)`",
                        ));
                    };
                    let mut items = tuple.elems.into_iter();
                    let (Some(name), Some(value), None) =
                        (items.next(), items.next(), items.next())
                    else {
                        return Err(syn::Error::new(
                            Span::call_site(),
                            "expected `(\"name\", value or closure)`",
                        ));
                    };
                    args.resource_attrs.push((name, Resolver::new(value)));
                }
            }
            other => {
                return Err(syn::Error::new(
                    pair.path.span(),
                    format!(
                        "unknown parameter `{other}`; expected one of: name, policy, origin, added_taints, \
                         removed_taints, trust_override, classification, engine, identity, trust_evaluator, user, \
                         agent, task, resource_id, resource_attr"
                    ),
                ));
            }
        }
    }
    for policy in &args.policies {
        if let Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) = policy
            && text.value().trim().is_empty()
        {
            return Err(syn::Error::new(
                policy.span(),
                "a policy name must not be empty",
            ));
        }
    }
    if args.policies.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[kest::verified] needs at least one function policy: `policy = \"name\"` or `policy = [\"a\", \"b\"]`",
        ));
    }
    Ok(args)
}

/// `T` of a return type `Result<T, E>` (any path ending in `Result`).
fn ok_type(output: &ReturnType) -> syn::Result<Type> {
    let error = || {
        syn::Error::new(
            output.span(),
            "#[kest::verified] functions must return `Result<T, E>` where `E: From<kest::KestError>`, so that a \
             refused call can be reported",
        )
    };
    let ReturnType::Type(_, ty) = output else {
        return Err(error());
    };
    let Type::Path(path) = ty.as_ref() else {
        return Err(error());
    };
    let last = path.path.segments.last().ok_or_else(error)?;
    if last.ident != "Result" {
        return Err(error());
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Err(error());
    };
    match generics.args.first() {
        Some(GenericArgument::Type(ty)) => Ok(ty.clone()),
        _ => Err(error()),
    }
}

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(args)?;
    let function: ItemFn = syn::parse2(item)?;
    let ok = ok_type(&function.sig.output)?;
    let is_async = function.sig.asyncness.is_some();

    // The arguments the closures and the input hash see (not `self`). Arguments bound by
    // a pattern cannot be named, so they make the input unhashable.
    let mut names = Vec::new();
    let mut hashable = true;
    for input in &function.sig.inputs {
        if let FnArg::Typed(typed) = input {
            match typed.pat.as_ref() {
                Pat::Ident(ident) => names.push(ident.ident.to_token_stream()),
                _ => hashable = false,
            }
        }
    }

    let operation = args.name.map_or_else(
        || function.sig.ident.to_string().into_token_stream(),
        |name| name.into_token_stream(),
    );
    let policies = &args.policies;
    let mut call = quote! { ::kest::Call::new(#operation) #(.policy(#policies))* };
    if let Some(origin) = &args.origin {
        call.extend(quote! { .origin(#origin) });
    }
    if let Some(taints) = &args.added_taints {
        call.extend(quote! { .added_taints(#taints) });
    }
    if let Some(taints) = &args.removed_taints {
        call.extend(quote! { .removed_taints(#taints) });
    }
    if let Some(score) = &args.trust_override {
        call.extend(quote! { .trust_override(#score) });
    }
    if let Some(classification) = &args.classification {
        call.extend(quote! { .classification(#classification) });
    }
    if let Some(engine) = &args.engine {
        call.extend(quote! { .engine(#engine) });
    }
    if let Some(identity) = &args.identity {
        call.extend(quote! { .identity(#identity) });
    }
    if let Some(evaluator) = &args.trust_evaluator {
        call.extend(quote! { .trust_evaluator(#evaluator) });
    }

    let mut values = quote! { ::kest::Values::new() };
    for (method, resolver) in [
        ("user", &args.user),
        ("agent", &args.agent),
        ("task", &args.task),
        ("resource_id", &args.resource_id),
    ] {
        if let Some(resolver) = resolver {
            let setter = syn::Ident::new(&format!("set_{method}"), Span::call_site());
            let value = resolver.tokens(&names);
            values = quote! { ::kest::private::#setter(#values, #value) };
        }
    }
    for (name, resolver) in &args.resource_attrs {
        let value = resolver.tokens(&names);
        values = quote! { #values.resource_attr(#name, #value) };
    }
    if hashable {
        values = quote! {
            ::kest::private::with_input_hash(
                #values,
                ::kest::private::hash_arguments(::std::vec![#((&&::kest::private::Probe(&#names)).kest_json()),*]),
            )
        };
    }

    let body = &function.block;
    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    let span = function.sig.ident.span();
    let hook = quote_spanned! {span=>
        #[allow(clippy::items_after_statements, reason = "the call site's hook is declared where it is used")]
        static __KEST_SITE: ::kest::private::Site = ::kest::private::Site::new();
        let __kest_hook = match __KEST_SITE.hook(|| #call) {
            ::core::result::Result::Ok(hook) => hook,
            ::core::result::Result::Err(error) => return ::core::result::Result::Err(::core::convert::From::from(error)),
        };
    };
    let output_hash = quote! {
        |__kest_output: &#ok| ::kest::private::hash_json((&&::kest::private::Probe(__kest_output)).kest_json())
    };
    let run = if is_async {
        quote! { __kest_hook.run_result(__kest_values, async move #body, #output_hash).await }
    } else {
        quote! { __kest_hook.run_result_sync(__kest_values, move || #body, #output_hash) }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #[allow(unused_imports, reason = "one of the two probes is used, depending on the output type")]
            use ::kest::private::{ViaFallback as _, ViaSerialize as _};
            #hook
            let __kest_values = #values;
            #run
        }
    })
}
