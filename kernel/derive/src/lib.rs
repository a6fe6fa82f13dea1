//! `#[derive(Settings)]` and `#[derive(Choice)]` for elmlab plugins (see
//! `elmlab_core::settings`): a settings struct is written once, as Rust, and its schema
//! (names, kinds, bounds, defaults, docs) and reading come from it.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::spanned::Spanned;
use syn::{parse_macro_input, Data, DeriveInput, Expr, Fields, Lit};

/// Implements `DeclaredSettings` (and `SettingType`/`SettingValue`, so the struct can be
/// a section of another) for a struct with named fields.
#[proc_macro_derive(Settings, attributes(setting))]
pub fn derive_settings(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    settings(&input).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Implements `Choice` (and `SettingType`/`SettingValue`) for an enum of unit variants.
#[proc_macro_derive(Choice, attributes(choice))]
pub fn derive_choice(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    choice(&input).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// What `#[setting(...)]` says about one field.
#[derive(Default)]
struct FieldAttrs {
    default: Option<Expr>,
    bounds: Vec<(&'static str, Expr)>,
    plugin: Option<syn::Ident>,
    /// The field is a settings struct whose fields are declared at this level.
    flatten: bool,
}

fn field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("setting")) {
        attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            match key.as_str() {
                "default" => out.default = Some(meta.value()?.parse()?),
                "min" => out.bounds.push(("at_least", meta.value()?.parse()?)),
                "above" => out.bounds.push(("above", meta.value()?.parse()?)),
                "max" => out.bounds.push(("at_most", meta.value()?.parse()?)),
                "below" => out.bounds.push(("below", meta.value()?.parse()?)),
                "plugin" => out.plugin = Some(meta.value()?.parse()?),
                "flatten" => out.flatten = true,
                _ => return Err(meta.error("expected default, min, above, max, below, plugin or flatten")),
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The field's doc comment, lines joined by spaces.
fn doc(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join(" ")
}

/// A number literal (possibly negative) as an `f64` expression.
fn number(e: &Expr) -> syn::Result<Tokens> {
    match e {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => {
            let v: i64 = i.base10_parse()?;
            let v = v as f64;
            Ok(quote!(#v))
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) => {
            let v: f64 = f.base10_parse()?;
            Ok(quote!(#v))
        }
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => {
            let inner = number(expr)?;
            Ok(quote!(-#inner))
        }
        other => Err(syn::Error::new(other.span(), "expected a number")),
    }
}

/// A default written in the attribute, as a `DefaultValue`.
fn default_value(e: &Expr) -> syn::Result<Tokens> {
    let dv = quote!(::elmlab_core::schema::DefaultValue);
    Ok(match e {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => {
            let v: i64 = i.base10_parse()?;
            quote!(#dv::Int(#v))
        }
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) if matches!(expr.as_ref(), Expr::Lit(syn::ExprLit { lit: Lit::Int(_), .. })) => {
            let Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) = expr.as_ref() else { unreachable!() };
            let v: i64 = -i.base10_parse::<i64>()?;
            quote!(#dv::Int(#v))
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Float(_), .. }) | Expr::Unary(_) => {
            let v = number(e)?;
            quote!(#dv::Float(#v))
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => quote!(#dv::Text(#s)),
        Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => quote!(#dv::Bool(#b)),
        Expr::Tuple(t) if t.elems.len() == 2 => {
            let (a, b) = (number(&t.elems[0])?, number(&t.elems[1])?);
            quote!(#dv::Range(#a, #b))
        }
        Expr::Path(p) if p.path.is_ident("None") => quote!(#dv::None),
        other => return Err(syn::Error::new(other.span(), "a default is a number, text, true/false, (low, high) or None")),
    })
}

fn settings(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else { return Err(syn::Error::new(input.span(), "Settings is derived for structs")) };
    let Fields::Named(fields) = &data.fields else { return Err(syn::Error::new(input.span(), "Settings needs named fields")) };
    let core = quote!(::elmlab_core);
    // the declaration in segments: runs of this struct's own fields, and flattened structs
    let mut segments: Vec<Tokens> = Vec::new();
    let mut specs = Vec::new();
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for field in fields.named.iter() {
        let ident = field.ident.as_ref().expect("named");
        let key = ident.to_string();
        let ty = &field.ty;
        let attrs = field_attrs(field)?;
        if attrs.flatten {
            if !specs.is_empty() {
                segments.push(quote!(&[#(#specs),*]));
                specs.clear();
            }
            segments.push(quote!(<#ty as #core::settings::DeclaredSettings>::FIELDS));
            reads.push(quote!(#ident: <#ty as #core::settings::DeclaredSettings>::from_settings(s)?));
            writes.push(quote!(m.extend(#core::settings::DeclaredSettings::to_settings(&self.#ident).as_map().clone());));
            continue;
        }
        let mut kind = match &attrs.plugin {
            Some(family) => {
                let variant = match family.to_string().as_str() {
                    "neuron" => quote!(Neuron),
                    "connectivity" => quote!(Connectivity),
                    "task" => quote!(Task),
                    _ => return Err(syn::Error::new(family.span(), "plugin = neuron, connectivity or task")),
                };
                quote!(#core::schema::FieldKind::Plugin(#core::schema::PluginFamily::#variant))
            }
            None => quote!(<#ty as #core::settings::SettingType>::KIND),
        };
        for (method, bound) in &attrs.bounds {
            let method = syn::Ident::new(method, bound.span());
            let x = number(bound)?;
            kind = quote!(#kind.#method(#x));
        }
        let default = match &attrs.default {
            Some(e) => {
                let d = default_value(e)?;
                quote!(#d.fit(#kind))
            }
            None if attrs.plugin.is_some() => quote!(#core::schema::DefaultValue::Required),
            None => quote!(#core::schema::DefaultValue::absent(#kind)),
        };
        let text = doc(&field.attrs);
        if text.is_empty() {
            return Err(syn::Error::new(ident.span(), "document each setting with a `///` line: it is what `elmlab list` shows"));
        }
        specs.push(quote!(#core::schema::FieldSpec::new(#key, #kind, #default, #text)));
        reads.push(quote!(#ident: s.read(#core::schema::field(<Self as #core::settings::DeclaredSettings>::FIELDS, #key))?));
        writes.push(quote!(m.insert(#key.to_string(), #core::settings::SettingValue::write(&self.#ident));));
    }
    let declaration = if segments.is_empty() {
        quote!(&[#(#specs),*])
    } else {
        if !specs.is_empty() {
            segments.push(quote!(&[#(#specs),*]));
        }
        let lens = segments.iter().map(|s| quote!((#s).len()));
        quote!(&#core::schema::concat_fields::<{ 0 #(+ #lens)* }>(&[#(#segments),*]))
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #core::settings::DeclaredSettings for #name #ty_generics #where_clause {
            const FIELDS: &'static [#core::schema::FieldSpec] = #declaration;
            fn from_settings(s: &#core::settings::Settings) -> ::std::result::Result<Self, #core::error::SettingsError> {
                ::std::result::Result::Ok(Self { #(#reads),* })
            }
            fn to_settings(&self) -> #core::settings::Settings {
                let mut m = ::std::collections::BTreeMap::new();
                #(#writes)*
                #core::settings::Settings::from_map(m)
            }
        }
        impl #impl_generics #core::settings::SettingValue for #name #ty_generics #where_clause {
            fn read(v: &#core::settings::Value) -> ::std::result::Result<Self, ::std::string::String> {
                #core::settings::read_section(v)
            }
            fn write(&self) -> #core::settings::Value {
                #core::settings::write_section(self)
            }
        }
        impl #impl_generics #core::settings::SettingType for #name #ty_generics #where_clause {
            const KIND: #core::schema::FieldKind = #core::schema::FieldKind::Section(<Self as #core::settings::DeclaredSettings>::FIELDS);
        }
    })
}

/// `Relu2` → `relu2`, `AdamW` → `adam_w`.
fn snake(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn choice(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else { return Err(syn::Error::new(input.span(), "Choice is derived for enums")) };
    let core = quote!(::elmlab_core);
    let mut words = Vec::new();
    let mut variants = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(v.span(), "a Choice variant has no fields"));
        }
        let mut word = snake(&v.ident.to_string());
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("choice")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let s: syn::LitStr = meta.value()?.parse()?;
                    word = s.value();
                    Ok(())
                } else {
                    Err(meta.error("expected rename = \"...\""))
                }
            })?;
        }
        words.push(word);
        variants.push(v.ident.clone());
    }
    Ok(quote! {
        impl #core::settings::Choice for #name {
            const WORDS: &'static [&'static str] = &[#(#words),*];
            fn word(self) -> &'static str {
                match self { #(Self::#variants => #words),* }
            }
            fn from_word(word: &str) -> ::std::option::Option<Self> {
                match word { #(#words => ::std::option::Option::Some(Self::#variants),)* _ => ::std::option::Option::None }
            }
        }
        impl #core::settings::SettingValue for #name {
            fn read(v: &#core::settings::Value) -> ::std::result::Result<Self, ::std::string::String> {
                let word = v.as_str().ok_or("not text")?;
                <Self as #core::settings::Choice>::from_word(word).ok_or_else(|| ::std::format!("`{word}` is not one of {}", <Self as #core::settings::Choice>::WORDS.join(", ")))
            }
            fn write(&self) -> #core::settings::Value {
                #core::settings::Value::from(<Self as #core::settings::Choice>::word(*self))
            }
        }
        impl #core::settings::SettingType for #name {
            const KIND: #core::schema::FieldKind = #core::schema::FieldKind::Choice(<Self as #core::settings::Choice>::WORDS);
        }
    })
}
