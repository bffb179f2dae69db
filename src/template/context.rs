//! The shape of the render context (DESIGN §3): which paths a template may read.
//!
//! The variable check walks template paths through this tree; the renderer builds a JSON
//! value of exactly this shape. Keep the two in step: a path accepted here must be present
//! at render time, or strict rendering fails the send.

use std::collections::BTreeSet;

use crate::schema::{self, FieldType};

/// Top-level keys of the render context.
pub const ROOT_KEYS: &[&str] = &["member", "event", "journey", "step", "variant", "vars", "links", "shop"];
/// `journey.*`.
pub const JOURNEY_KEYS: &[&str] = &["id", "name"];
/// `step.*`.
pub const STEP_KEYS: &[&str] = &["id"];
/// `links.*`: built by the engine from `TIDINGS_PUBLIC_URL` and signed tokens.
pub const LINK_KEYS: &[&str] = &["unsubscribe", "preferences"];
/// `shop.*`: from the config.
pub const SHOP_KEYS: &[&str] = &["name", "url", "support_email", "address"];
/// `message.*`: the rendered subject and preheader, readable by the HTML body of an email
/// and its layout (not by the front matter itself).
pub const MESSAGE_KEYS: &[&str] = &["subject", "preheader"];
/// An item of `(recommend N)` and `(bought_recently N)`.
pub const PRODUCT_KEYS: &[&str] = &["id", "title", "url", "image_url", "price", "currency", "category", "reason"];

/// A node of the context tree, as far as the check can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Root,
    Member,
    Journey,
    Step,
    Links,
    Shop,
    Vars,
    Message,
    /// A string, number, boolean or date: nothing below it.
    Scalar(&'static str),
    /// A list of strings (`member.tags`): indexes only.
    List,
    /// The list `(recommend N)` and `(bought_recently N)` give.
    Products,
    /// One product of such a list ([`PRODUCT_KEYS`]).
    Product,
    /// Free JSON (`event.*`, `member.attributes.*`, `vars.KEY.*`): anything goes.
    Any,
}

/// Why a key was not found below a node.
pub(crate) enum Missing {
    /// The node has keys; this is not one of them.
    Unknown { candidates: Vec<String> },
    /// The node is a scalar (`member.first_name.x`) or a list indexed by a name.
    NotAnObject { kind: &'static str },
}

/// What the check needs to know besides the fixed tree.
pub(crate) struct Provided<'a> {
    pub vars: &'a BTreeSet<String>,
    /// Whether `message.*` may be read (email body, text part and layout).
    pub message: bool,
}

impl Node {
    pub(crate) fn child(self, key: &str, provided: &Provided<'_>) -> Result<Node, Missing> {
        let from = |keys: &[&str], node: Node| {
            if keys.contains(&key) {
                Ok(node)
            } else {
                Err(Missing::Unknown { candidates: keys.iter().map(|k| k.to_string()).collect() })
            }
        };
        match self {
            Node::Root => match key {
                "member" => Ok(Node::Member),
                "event" => Ok(Node::Any),
                "journey" => Ok(Node::Journey),
                "step" => Ok(Node::Step),
                "variant" => Ok(Node::Scalar("string")),
                "vars" => Ok(Node::Vars),
                "links" => Ok(Node::Links),
                "shop" => Ok(Node::Shop),
                "message" if provided.message => Ok(Node::Message),
                _ => Err(Missing::Unknown { candidates: root_keys(provided) }),
            },
            Node::Member => {
                if key == "attributes" {
                    return Ok(Node::Any);
                }
                match schema::member_field(key) {
                    Some(field) => Ok(match field.ty {
                        FieldType::StringList => Node::List,
                        FieldType::Json => Node::Any,
                        ty => Node::Scalar(ty.describe()),
                    }),
                    None => Err(Missing::Unknown {
                        candidates: schema::member_field_names().chain(["attributes"]).map(str::to_string).collect(),
                    }),
                }
            }
            Node::Journey => from(JOURNEY_KEYS, Node::Scalar("string")),
            Node::Step => from(STEP_KEYS, Node::Scalar("string")),
            Node::Links => from(LINK_KEYS, Node::Scalar("string")),
            Node::Shop => from(SHOP_KEYS, Node::Scalar("string")),
            Node::Message => from(MESSAGE_KEYS, Node::Scalar("string")),
            Node::Vars => {
                if provided.vars.contains(key) {
                    Ok(Node::Any)
                } else {
                    Err(Missing::Unknown { candidates: provided.vars.iter().cloned().collect() })
                }
            }
            Node::Product => match key {
                "price" => Ok(Node::Scalar("number")),
                _ => from(PRODUCT_KEYS, Node::Scalar("string")),
            },
            Node::Products if key.parse::<usize>().is_ok() => Ok(Node::Product),
            Node::Products => Err(Missing::NotAnObject { kind: "list of products" }),
            Node::List if key.parse::<usize>().is_ok() => Ok(Node::Scalar("string")),
            Node::List => Err(Missing::NotAnObject { kind: "list" }),
            Node::Scalar(kind) => Err(Missing::NotAnObject { kind }),
            Node::Any => Ok(Node::Any),
        }
    }

    /// The node an `#each` over this node yields for each item.
    pub(crate) fn item(self) -> Node {
        match self {
            Node::List => Node::Scalar("string"),
            Node::Products => Node::Product,
            _ => Node::Any,
        }
    }
}

fn root_keys(provided: &Provided<'_>) -> Vec<String> {
    let mut keys: Vec<String> = ROOT_KEYS.iter().map(|k| k.to_string()).collect();
    if provided.message {
        keys.push("message".into());
    }
    keys
}
