//! XEP-0004 data forms (`jabber:x:data`), sans-IO: an [`Element`] in, a [`DataForm`]
//! out, and back. Used by the room configuration form (XEP-0045 §10.2) and the archive
//! query (XEP-0313).
//!
//! Parsing is bounded, since forms come from clients: at most [`MAX_FIELDS`] fields,
//! [`MAX_VALUES`] values (and as many options) per field, [`MAX_TEXT_BYTES`] bytes per
//! value, label, title or instructions. The hidden `FORM_TYPE` field (XEP-0068) is
//! lifted out of the fields into [`DataForm::form_type`]. Multi-item forms
//! (`<reported/>` and `<item/>`, only in results) are not read: nothing here needs them.

use thiserror::Error;

use crate::xml::Element;

/// The data forms namespace.
pub const NS_DATA: &str = "jabber:x:data";
/// Most fields a form may hold.
pub const MAX_FIELDS: usize = 100;
/// Most values, and most options, one field may hold.
pub const MAX_VALUES: usize = 50;
/// Longest value, label, description, title or instructions, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// What the form is for (the `type` attribute of `<x/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormType {
    /// A form to fill in.
    Form,
    /// A filled-in form.
    Submit,
    /// The submitter gave up.
    Cancel,
    /// Data returned (a command's or a search's result).
    Result,
}

impl FormType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            FormType::Form => "form",
            FormType::Submit => "submit",
            FormType::Cancel => "cancel",
            FormType::Result => "result",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "form" => FormType::Form,
            "submit" => FormType::Submit,
            "cancel" => FormType::Cancel,
            "result" => FormType::Result,
            _ => return None,
        })
    }
}

/// A field's type (XEP-0004 §3.3). A field without `type` is `text-single`, as the XEP
/// says (submitted forms often leave it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `boolean`: one of `0`, `1`, `false`, `true`.
    Boolean,
    /// `fixed`: text shown, not submitted.
    Fixed,
    /// `hidden`: carried, not shown.
    Hidden,
    /// `jid-multi`.
    JidMulti,
    /// `jid-single`.
    JidSingle,
    /// `list-multi`: several of the options.
    ListMulti,
    /// `list-single`: one of the options.
    ListSingle,
    /// `text-multi`: lines, one value each.
    TextMulti,
    /// `text-private`: a password.
    TextPrivate,
    /// `text-single`.
    TextSingle,
}

impl FieldType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::Fixed => "fixed",
            FieldType::Hidden => "hidden",
            FieldType::JidMulti => "jid-multi",
            FieldType::JidSingle => "jid-single",
            FieldType::ListMulti => "list-multi",
            FieldType::ListSingle => "list-single",
            FieldType::TextMulti => "text-multi",
            FieldType::TextPrivate => "text-private",
            FieldType::TextSingle => "text-single",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "boolean" => FieldType::Boolean,
            "fixed" => FieldType::Fixed,
            "hidden" => FieldType::Hidden,
            "jid-multi" => FieldType::JidMulti,
            "jid-single" => FieldType::JidSingle,
            "list-multi" => FieldType::ListMulti,
            "list-single" => FieldType::ListSingle,
            "text-multi" => FieldType::TextMulti,
            "text-private" => FieldType::TextPrivate,
            "text-single" => FieldType::TextSingle,
            _ => return None,
        })
    }
}

/// One field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name; `None` only for `fixed` fields, which may go without.
    pub var: Option<String>,
    /// Its type.
    pub kind: FieldType,
    /// What a person sees.
    pub label: Option<String>,
    /// Longer help text (`<desc/>`).
    pub desc: Option<String>,
    /// `<required/>`.
    pub required: bool,
    /// The values, in order.
    pub values: Vec<String>,
    /// The options of a list field: (label, value); an empty label is none.
    pub options: Vec<(String, String)>,
}

impl Field {
    /// A field with no label, values or options.
    pub fn new(var: &str, kind: FieldType) -> Self {
        Field {
            var: Some(var.to_owned()),
            kind,
            label: None,
            desc: None,
            required: false,
            values: Vec::new(),
            options: Vec::new(),
        }
    }

    /// A `fixed` field showing `text`.
    pub fn fixed(text: &str) -> Self {
        Field {
            var: None,
            kind: FieldType::Fixed,
            label: None,
            desc: None,
            required: false,
            values: vec![text.to_owned()],
            options: Vec::new(),
        }
    }

    /// Builder: sets the label.
    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(label.to_owned());
        self
    }

    /// Builder: adds a value.
    pub fn value(mut self, value: &str) -> Self {
        self.values.push(value.to_owned());
        self
    }

    /// Builder: adds an option.
    pub fn option(mut self, label: &str, value: &str) -> Self {
        self.options.push((label.to_owned(), value.to_owned()));
        self
    }

    fn to_element(&self) -> Element {
        let mut el = Element::new("field", NS_DATA);
        if let Some(label) = &self.label {
            el.set_attr("label", label);
        }
        el.set_attr("type", self.kind.as_str());
        if let Some(var) = &self.var {
            el.set_attr("var", var);
        }
        if let Some(desc) = &self.desc {
            el = el.child(Element::new("desc", NS_DATA).text(desc));
        }
        if self.required {
            el = el.child(Element::new("required", NS_DATA));
        }
        for v in &self.values {
            el = el.child(Element::new("value", NS_DATA).text(v));
        }
        for (label, value) in &self.options {
            let mut option = Element::new("option", NS_DATA);
            if !label.is_empty() {
                option.set_attr("label", label);
            }
            el = el.child(option.child(Element::new("value", NS_DATA).text(value)));
        }
        el
    }
}

/// A data form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataForm {
    /// Form, submit, cancel or result.
    pub kind: FormType,
    /// The value of the hidden `FORM_TYPE` field, if any (XEP-0068).
    pub form_type: Option<String>,
    /// `<title/>`.
    pub title: Option<String>,
    /// `<instructions/>`; several are joined with newlines.
    pub instructions: Option<String>,
    /// The fields but `FORM_TYPE`, in order.
    pub fields: Vec<Field>,
}

/// Why a form was refused. `code()` strings are stable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormError {
    /// Not an `<x xmlns='jabber:x:data'/>`.
    #[error("not a data form")]
    NotAForm,
    /// A form `type` that XEP-0004 does not define, or none.
    #[error("unknown form type {0:?}")]
    BadFormType(String),
    /// A field `type` that XEP-0004 does not define.
    #[error("field {var:?} has an unknown type {kind:?}")]
    BadFieldType {
        /// The field (empty when it had none).
        var: String,
        /// The type given.
        kind: String,
    },
    /// A field other than `fixed` without `var`.
    #[error("a {0} field without var")]
    MissingVar(&'static str),
    /// Two fields with one `var`.
    #[error("field {0:?} appears twice")]
    DuplicateVar(String),
    /// More than [`MAX_FIELDS`] fields.
    #[error("more than {0} fields")]
    TooManyFields(usize),
    /// More than [`MAX_VALUES`] values or options in a field.
    #[error("field {var:?} has more than {max} values or options")]
    TooManyValues {
        /// The field.
        var: String,
        /// The bound.
        max: usize,
    },
    /// A value, label or text longer than [`MAX_TEXT_BYTES`].
    #[error("a text of field {var:?} is longer than {max} bytes")]
    TooLong {
        /// The field (empty for the title and instructions).
        var: String,
        /// The bound.
        max: usize,
    },
    /// Several values where one is expected.
    #[error("field {0:?} has more than one value")]
    MultipleValues(String),
    /// A boolean field's value that is not `0`, `1`, `false` or `true`.
    #[error("field {var:?} is not a boolean: {value:?}")]
    BadBoolean {
        /// The field.
        var: String,
        /// The value (cut short).
        value: String,
    },
}

impl FormError {
    /// A stable code for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            FormError::NotAForm => "form.not_a_form",
            FormError::BadFormType(_) => "form.bad_form_type",
            FormError::BadFieldType { .. } => "form.bad_field_type",
            FormError::MissingVar(_) => "form.missing_var",
            FormError::DuplicateVar(_) => "form.duplicate_var",
            FormError::TooManyFields(_) => "form.too_many_fields",
            FormError::TooManyValues { .. } => "form.too_many_values",
            FormError::TooLong { .. } => "form.too_long",
            FormError::MultipleValues(_) => "form.multiple_values",
            FormError::BadBoolean { .. } => "form.bad_boolean",
        }
    }

    /// The XMPP stanza error condition: every form error is the sender's (`bad-request`).
    pub fn condition(&self) -> &'static str {
        "bad-request"
    }
}

/// A boolean as XEP-0004 writes it: `1`/`true` or `0`/`false`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// Cuts a text for an error message.
fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

fn bounded(text: String, var: &str) -> Result<String, FormError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(FormError::TooLong {
            var: cut(var),
            max: MAX_TEXT_BYTES,
        });
    }
    Ok(text)
}

/// Parses a data form.
pub fn parse(x: &Element) -> Result<DataForm, FormError> {
    if x.name != "x" || x.ns != NS_DATA {
        return Err(FormError::NotAForm);
    }
    let kind_attr = x.get_attr("type").unwrap_or("");
    let kind = FormType::parse(kind_attr).ok_or_else(|| FormError::BadFormType(cut(kind_attr)))?;
    let mut form = DataForm {
        kind,
        form_type: None,
        title: None,
        instructions: None,
        fields: Vec::new(),
    };
    let mut field_count = 0usize;
    for child in x.elements().filter(|e| e.ns == NS_DATA) {
        match child.name.as_str() {
            "title" => form.title = Some(bounded(child.text_content(), "")?),
            "instructions" => {
                let mut text = form.instructions.take().unwrap_or_default();
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&child.text_content());
                form.instructions = Some(bounded(text, "")?);
            }
            "field" => {
                field_count += 1;
                if field_count > MAX_FIELDS {
                    return Err(FormError::TooManyFields(MAX_FIELDS));
                }
                let field = parse_field(child)?;
                if field.var.as_deref() == Some("FORM_TYPE") {
                    if form.form_type.is_some() {
                        return Err(FormError::DuplicateVar("FORM_TYPE".into()));
                    }
                    if field.values.len() > 1 {
                        return Err(FormError::MultipleValues("FORM_TYPE".into()));
                    }
                    form.form_type = Some(field.values.into_iter().next().unwrap_or_default());
                    continue;
                }
                if let Some(var) = &field.var {
                    if form.field(var).is_some() {
                        return Err(FormError::DuplicateVar(cut(var)));
                    }
                }
                form.fields.push(field);
            }
            // <reported/> and <item/> (multi-item results) and extensions are not read.
            _ => {}
        }
    }
    Ok(form)
}

fn parse_field(el: &Element) -> Result<Field, FormError> {
    let var = el.get_attr("var").map(str::to_owned);
    let var_name = var.clone().unwrap_or_default();
    let var_name = var_name.as_str();
    let kind = match el.get_attr("type") {
        None => FieldType::TextSingle,
        Some(t) => FieldType::parse(t).ok_or_else(|| FormError::BadFieldType {
            var: cut(var_name),
            kind: cut(t),
        })?,
    };
    if var.is_none() && kind != FieldType::Fixed {
        return Err(FormError::MissingVar(kind.as_str()));
    }
    let var = match var {
        Some(v) => Some(bounded(v, "")?),
        None => None,
    };
    let label = match el.get_attr("label") {
        Some(l) => Some(bounded(l.to_owned(), var_name)?),
        None => None,
    };
    let mut field = Field {
        var,
        kind,
        label,
        desc: None,
        required: false,
        values: Vec::new(),
        options: Vec::new(),
    };
    let too_many = || FormError::TooManyValues {
        var: cut(var_name),
        max: MAX_VALUES,
    };
    for child in el.elements().filter(|e| e.ns == NS_DATA) {
        match child.name.as_str() {
            "value" => {
                if field.values.len() >= MAX_VALUES {
                    return Err(too_many());
                }
                field.values.push(bounded(child.text_content(), var_name)?);
            }
            "option" => {
                if field.options.len() >= MAX_VALUES {
                    return Err(too_many());
                }
                let label = bounded(child.get_attr("label").unwrap_or("").to_owned(), var_name)?;
                let value = child
                    .get_child("value", NS_DATA)
                    .map(Element::text_content)
                    .unwrap_or_default();
                field.options.push((label, bounded(value, var_name)?));
            }
            "desc" => field.desc = Some(bounded(child.text_content(), var_name)?),
            "required" => field.required = true,
            _ => {}
        }
    }
    if kind == FieldType::Boolean {
        if field.values.len() > 1 {
            return Err(FormError::MultipleValues(cut(var_name)));
        }
        if let Some(v) = field.values.first() {
            if parse_bool(v).is_none() {
                return Err(FormError::BadBoolean {
                    var: cut(var_name),
                    value: cut(v),
                });
            }
        }
    }
    Ok(field)
}

impl DataForm {
    /// An empty form of this kind.
    pub fn new(kind: FormType) -> Self {
        DataForm {
            kind,
            form_type: None,
            title: None,
            instructions: None,
            fields: Vec::new(),
        }
    }

    /// The field named `var`.
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }

    /// The values of `var` (none when the field is absent).
    pub fn values(&self, var: &str) -> &[String] {
        self.field(var).map_or(&[], |f| f.values.as_slice())
    }

    /// The single value of `var`: `None` when the field is absent or has no value, an
    /// error when it has several.
    pub fn value(&self, var: &str) -> Result<Option<&str>, FormError> {
        match self.values(var) {
            [] => Ok(None),
            [one] => Ok(Some(one.as_str())),
            _ => Err(FormError::MultipleValues(cut(var))),
        }
    }

    /// The value of `var` read as a boolean (`1`/`true`, `0`/`false`), whatever the
    /// field's declared type: `None` when the field is absent or has no value.
    pub fn bool_value(&self, var: &str) -> Result<Option<bool>, FormError> {
        match self.value(var)? {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| FormError::BadBoolean {
                    var: cut(var),
                    value: cut(v),
                }),
        }
    }

    /// The `<x xmlns='jabber:x:data'/>` element, `FORM_TYPE` first.
    pub fn to_element(&self) -> Element {
        let mut x = Element::new("x", NS_DATA).attr("type", self.kind.as_str());
        if let Some(title) = &self.title {
            x = x.child(Element::new("title", NS_DATA).text(title));
        }
        if let Some(instructions) = &self.instructions {
            x = x.child(Element::new("instructions", NS_DATA).text(instructions));
        }
        if let Some(form_type) = &self.form_type {
            x = x.child(
                Field::new("FORM_TYPE", FieldType::Hidden)
                    .value(form_type)
                    .to_element(),
            );
        }
        for field in &self.fields {
            x = x.child(field.to_element());
        }
        x
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::xml::parse_element;

    fn el(xml: &str) -> Element {
        parse_element(xml, "jabber:client", &[]).unwrap()
    }

    /// XEP-0004 Example 2 (the bot configuration form), abridged only in whitespace.
    const EXAMPLE_FORM: &str = "<x xmlns='jabber:x:data' type='form'>\
        <title>Bot Configuration</title>\
        <instructions>Fill out this form to configure your new bot!</instructions>\
        <field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>\
        <field type='fixed'><value>Section 1: Bot Info</value></field>\
        <field type='text-single' label='The name of your bot' var='botname'/>\
        <field type='text-multi' label='Helpful description of your bot' var='description'/>\
        <field type='boolean' label='Public bot?' var='public'><required/><value>0</value></field>\
        <field type='text-private' label='Password for special access' var='password'/>\
        <field type='fixed'><value>Section 2: Features</value></field>\
        <field type='list-multi' label='What features will the bot support?' var='features'>\
          <option label='Contests'><value>contests</value></option>\
          <option label='News'><value>news</value></option>\
          <option label='Polls'><value>polls</value></option>\
          <option label='Reminders'><value>reminders</value></option>\
          <option label='Search'><value>search</value></option>\
          <value>news</value><value>search</value>\
        </field>\
        <field type='fixed'><value>Section 3: Subscriber List</value></field>\
        <field type='list-single' label='Maximum number of subscribers' var='maxsubs'>\
          <value>20</value>\
          <option label='10'><value>10</value></option>\
          <option label='20'><value>20</value></option>\
          <option label='30'><value>30</value></option>\
          <option label='50'><value>50</value></option>\
          <option label='100'><value>100</value></option>\
          <option label='None'><value>none</value></option>\
        </field>\
        <field type='fixed'><value>Section 4: Invitations</value></field>\
        <field type='jid-multi' label='People to invite' var='invitelist'>\
          <desc>Tell all your friends about your new bot!</desc>\
        </field>\
      </x>";

    /// XEP-0004 Example 3 (the submitted bot form).
    const EXAMPLE_SUBMIT: &str = "<x xmlns='jabber:x:data' type='submit'>\
        <field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>\
        <field type='text-single' var='botname'><value>The Jabber Google Bot</value></field>\
        <field type='text-multi' var='description'>\
          <value>This bot enables you to perform Google searches.</value>\
          <value>It has the following features:</value>\
        </field>\
        <field type='boolean' var='public'><value>0</value></field>\
        <field type='text-private' var='password'><value>v3r0na</value></field>\
        <field type='list-multi' var='features'><value>news</value><value>search</value></field>\
        <field type='list-single' var='maxsubs'><value>50</value></field>\
        <field type='jid-multi' var='invitelist'>\
          <value>juliet@capulet.com</value><value>benvolio@montague.net</value>\
        </field>\
      </x>";

    #[test]
    fn the_xep_form_example_parses() {
        let form = parse(&el(EXAMPLE_FORM)).unwrap();
        assert_eq!(form.kind, FormType::Form);
        assert_eq!(form.form_type.as_deref(), Some("jabber:bot"));
        assert_eq!(form.title.as_deref(), Some("Bot Configuration"));
        assert_eq!(
            form.instructions.as_deref(),
            Some("Fill out this form to configure your new bot!")
        );
        assert_eq!(form.fields.len(), 11);
        assert_eq!(form.fields[0], Field::fixed("Section 1: Bot Info"));
        let public = form.field("public").unwrap();
        assert_eq!(public.kind, FieldType::Boolean);
        assert!(public.required);
        assert_eq!(form.bool_value("public"), Ok(Some(false)));
        let features = form.field("features").unwrap();
        assert_eq!(features.kind, FieldType::ListMulti);
        assert_eq!(features.options.len(), 5);
        assert_eq!(features.options[1], ("News".into(), "news".into()));
        assert_eq!(form.values("features"), ["news", "search"]);
        assert_eq!(
            form.value("features"),
            Err(FormError::MultipleValues("features".into()))
        );
        assert_eq!(form.value("maxsubs"), Ok(Some("20")));
        assert_eq!(form.value("botname"), Ok(None));
        assert_eq!(
            form.field("invitelist").unwrap().desc.as_deref(),
            Some("Tell all your friends about your new bot!")
        );
        assert!(form.field("nothing").is_none());
    }

    #[test]
    fn the_xep_submit_example_parses() {
        let form = parse(&el(EXAMPLE_SUBMIT)).unwrap();
        assert_eq!(form.kind, FormType::Submit);
        assert_eq!(form.form_type.as_deref(), Some("jabber:bot"));
        assert_eq!(form.value("botname"), Ok(Some("The Jabber Google Bot")));
        assert_eq!(form.value("password"), Ok(Some("v3r0na")));
        assert_eq!(form.bool_value("public"), Ok(Some(false)));
        assert_eq!(form.values("invitelist").len(), 2);
        assert_eq!(form.values("description").len(), 2);
    }

    #[test]
    fn forms_round_trip() {
        for xml in [EXAMPLE_FORM, EXAMPLE_SUBMIT] {
            let form = parse(&el(xml)).unwrap();
            let again = parse(&form.to_element()).unwrap();
            assert_eq!(form, again);
            // And through text.
            let text = form.to_element().to_xml("jabber:client");
            assert_eq!(parse(&el(&text)).unwrap(), form);
        }
    }

    #[test]
    fn booleans_take_the_four_spellings() {
        for (v, b) in [("1", true), ("true", true), ("0", false), ("false", false)] {
            let xml = format!(
                "<x xmlns='jabber:x:data' type='submit'><field var='b'><value>{v}</value></field></x>"
            );
            assert_eq!(parse(&el(&xml)).unwrap().bool_value("b"), Ok(Some(b)));
        }
        // An untyped field is text-single: parsing takes any text, bool_value refuses it.
        let form = parse(&el(
            "<x xmlns='jabber:x:data' type='submit'><field var='b'><value>yes</value></field></x>",
        ))
        .unwrap();
        assert_eq!(form.fields[0].kind, FieldType::TextSingle);
        assert_eq!(form.bool_value("b").unwrap_err().code(), "form.bad_boolean");
        assert_eq!(form.bool_value("absent"), Ok(None));
        // A declared boolean is checked when parsed.
        let err = parse(&el("<x xmlns='jabber:x:data' type='submit'><field type='boolean' var='b'><value>yes</value></field></x>")).unwrap_err();
        assert_eq!(err.code(), "form.bad_boolean");
        assert_eq!(err.condition(), "bad-request");
    }

    #[test]
    fn malformed_forms_are_refused_with_stable_codes() {
        let cases = [
            ("<x xmlns='jabber:x:oob' type='submit'/>", "form.not_a_form"),
            ("<y xmlns='jabber:x:data' type='submit'/>", "form.not_a_form"),
            ("<x xmlns='jabber:x:data'/>", "form.bad_form_type"),
            ("<x xmlns='jabber:x:data' type='fill'/>", "form.bad_form_type"),
            (
                "<x xmlns='jabber:x:data' type='submit'><field type='text-bold' var='a'/></x>",
                "form.bad_field_type",
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field type='text-single'/></x>",
                "form.missing_var",
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>",
                "form.duplicate_var",
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>a</value><value>b</value></field></x>",
                "form.multiple_values",
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field type='boolean' var='a'><value>1</value><value>0</value></field></x>",
                "form.multiple_values",
            ),
        ];
        for (xml, code) in cases {
            assert_eq!(parse(&el(xml)).unwrap_err().code(), code, "{xml}");
        }
    }

    #[test]
    fn forms_are_bounded() {
        let fields: String = (0..=MAX_FIELDS)
            .map(|i| format!("<field var='f{i}'/>"))
            .collect();
        let xml = format!("<x xmlns='jabber:x:data' type='submit'>{fields}</x>");
        assert_eq!(
            parse(&el(&xml)).unwrap_err(),
            FormError::TooManyFields(MAX_FIELDS)
        );
        let ok: String = (0..MAX_FIELDS)
            .map(|i| format!("<field var='f{i}'/>"))
            .collect();
        let xml = format!("<x xmlns='jabber:x:data' type='submit'>{ok}</x>");
        assert_eq!(parse(&el(&xml)).unwrap().fields.len(), MAX_FIELDS);

        let values: String = (0..=MAX_VALUES)
            .map(|i| format!("<value>{i}</value>"))
            .collect();
        let xml = format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='m' type='list-multi'>{values}</field></x>"
        );
        assert_eq!(parse(&el(&xml)).unwrap_err().code(), "form.too_many_values");
        let options: String = (0..=MAX_VALUES)
            .map(|i| format!("<option><value>{i}</value></option>"))
            .collect();
        let xml = format!(
            "<x xmlns='jabber:x:data' type='form'><field var='m' type='list-multi'>{options}</field></x>"
        );
        assert_eq!(parse(&el(&xml)).unwrap_err().code(), "form.too_many_values");

        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        for xml in [
            format!("<x xmlns='jabber:x:data' type='submit'><field var='t'><value>{long}</value></field></x>"),
            format!("<x xmlns='jabber:x:data' type='submit'><field var='t' label='{long}'/></x>"),
            format!("<x xmlns='jabber:x:data' type='form'><title>{long}</title></x>"),
            format!("<x xmlns='jabber:x:data' type='submit'><field var='{long}'/></x>"),
        ] {
            assert_eq!(parse(&el(&xml)).unwrap_err().code(), "form.too_long");
        }
        let fits = "a".repeat(MAX_TEXT_BYTES);
        let xml = format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='t'><value>{fits}</value></field></x>"
        );
        assert_eq!(
            parse(&el(&xml)).unwrap().value("t"),
            Ok(Some(fits.as_str()))
        );
    }

    #[test]
    fn the_cancel_form_and_extensions() {
        let form = parse(&el("<x xmlns='jabber:x:data' type='cancel'/>")).unwrap();
        assert_eq!(form, DataForm::new(FormType::Cancel));
        // Elements of other namespaces (XEP-0122 validation) and multi-item results
        // are skipped.
        let form = parse(&el("<x xmlns='jabber:x:data' type='result'>\
            <reported><field var='a'/></reported><item><field var='a'><value>1</value></field></item>\
            <field var='b' type='list-multi'><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate></field>\
            </x>")).unwrap();
        assert_eq!(form.fields.len(), 1);
        assert_eq!(form.fields[0].var.as_deref(), Some("b"));
    }

    #[test]
    fn rendering_writes_the_form_type_first_and_omits_empty_labels() {
        let mut form = DataForm::new(FormType::Form);
        form.form_type = Some("urn:example".into());
        form.fields.push(
            Field::new("l", FieldType::ListSingle)
                .label("Pick")
                .value("a")
                .option("", "a")
                .option("Bee", "b"),
        );
        let xml = form.to_element().to_xml("jabber:client");
        assert_eq!(
            xml,
            "<x xmlns='jabber:x:data' type='form'>\
             <field type='hidden' var='FORM_TYPE'><value>urn:example</value></field>\
             <field label='Pick' type='list-single' var='l'><value>a</value>\
             <option><value>a</value></option>\
             <option label='Bee'><value>b</value></option></field></x>"
        );
    }
}
