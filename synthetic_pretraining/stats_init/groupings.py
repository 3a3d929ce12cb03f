"""Parameter groupings as declarative rules over t5x parameter paths.

A grouping is an ordered list of `Rule`s. A rule selects the parameters whose '/'-joined path
*fully* matches its regular expression and splits them into groups: all in one group, one group
per parameter (`EACH`), or one group per distinct value of some of the expression's named
groups (`by=('stack', 'layer')`). Patterns are written in whole path components, so nothing
depends on the model's depth and `wi_0` never matches `wi_1`. Every rule must select at least
one parameter and no parameter may be selected twice, so a typo or a foreign architecture is an
error rather than a silent no-op. Parameters that no rule selects (and those in `keep_random`,
by default the token embedding and T5 1.1's output embedding) keep their random initialisation.

Adding a grouping: `register_grouping('my', [Rule('kernels', LAYER_KERNEL, by=('stack',))])`
makes the schemes `my_grouping___init_mean_std` and `my_grouping___init_scale` available.
"""
import dataclasses
import re
from typing import Dict, List, Mapping, Sequence, Tuple, Union

from synthetic_pretraining.stats_init.errors import GroupingError

EACH = "each"
# The vocabulary-sized parameters: T5 1.0's shared embedding and T5 1.1's output projection; a
# decoder-only model (t5x's layout) has its embedding under decoder/.
EMBEDDINGS = ("token_embedder/embedding", "decoder/logits_dense/kernel",
              "decoder/token_embedder/embedding")

# Path fragments (t5x's names). Named groups: stack, layer, block, proj, norm.
STACK = r"(?P<stack>encoder|decoder)"
LAYER = rf"{STACK}/layers_(?P<layer>\d+)"
ATTENTION_KERNEL = rf"{LAYER}/(?P<block>[^/]*attention)/(?P<proj>query|key|value|out)/kernel"
MLP_KERNEL = rf"{LAYER}/(?P<block>mlp)/(?P<proj>wi|wi_\d+|wo)/kernel"
LAYER_KERNEL = rf"{LAYER}/(?P<block>[^/]*attention|mlp)/(?P<proj>[^/]+)/kernel"
LAYER_NORM = rf"{LAYER}/(?P<norm>[^/]*layer_norm)/scale"
PRE_ATTENTION_NORM = rf"{LAYER}/(?P<norm>[^/]*attention_layer_norm)/scale"
PRE_MLP_NORM = rf"{LAYER}/(?P<norm>pre_mlp_layer_norm)/scale"
FINAL_NORM = rf"{STACK}/(?P<norm>encoder_norm|decoder_norm)/scale"
ANY_NORM = r"(?:.*/)?[^/]*norm/scale"
RELPOS = rf"{STACK}/relpos_bias/rel_embedding"

_NORM = re.compile(ANY_NORM)


def is_layer_norm(path: str) -> bool:
  """True for T5's (RMS) layer-norm scales: the paper's `'norm' in name`, on components."""
  return _NORM.fullmatch(path) is not None


def natural_key(path: str) -> Tuple:
  """Sort key that puts layers_2 before layers_10."""
  return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path))


@dataclasses.dataclass(frozen=True)
class Rule:
  """Parameters whose path fully matches `pattern`, split into groups by `by`.

  Attributes:
    name: names the rule's groups in stats.json.
    pattern: regular expression, matched against the whole '/'-joined path.
    by: () for one group; EACH for one group per parameter; or names of `pattern`'s named
      groups, for one group per distinct combination of their values.
  """
  name: str
  pattern: str
  by: Union[str, Tuple[str, ...]] = ()

  def __post_init__(self):
    compiled = re.compile(self.pattern)
    if self.by != EACH:
      missing = set(self.by) - set(compiled.groupindex)
      if missing:
        raise GroupingError(f"Rule {self.name!r} splits by {sorted(missing)}, which are not named "
                            f"groups of its pattern {self.pattern!r}.")

  def key(self, path: str):
    """The group key of `path`, or None when the rule does not select it."""
    match = re.fullmatch(self.pattern, path)
    if match is None:
      return None
    if self.by == EACH:
      return (path,)
    return tuple(match.group(n) for n in self.by)

  def group_name(self, key) -> str:
    if self.by == EACH:
      return key[0]
    if not self.by:
      return self.name
    return self.name + "[" + ",".join(f"{n}={v}" for n, v in zip(self.by, key)) + "]"


@dataclasses.dataclass(frozen=True)
class Group:
  """A set of parameters whose values are pooled into one mean and std."""
  name: str
  members: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Grouping:
  """An ordered list of rules; `groups(paths)` applies them to a model's parameter paths."""
  rules: Tuple[Rule, ...]

  def groups(self, paths: Sequence[str], keep_random: Sequence[str] = EMBEDDINGS) -> List[Group]:
    """The groups of `paths`, in rule order, then in order of first member; members sorted.

    Args:
      paths: the model's '/'-joined parameter paths.
      keep_random: paths or full-match patterns of parameters that are never grouped.
    """
    excluded = [re.compile(p) for p in keep_random]
    candidates = sorted((p for p in paths if not any(e.fullmatch(p) for e in excluded)),
                        key=natural_key)
    owner: Dict[str, str] = {}
    result: List[Group] = []
    for rule in self.rules:
      buckets: Dict[tuple, List[str]] = {}
      for path in candidates:
        key = rule.key(path)
        if key is None:
          continue
        if path in owner:
          raise GroupingError(f"{path} is selected by rule {owner[path]!r} and by rule "
                              f"{rule.name!r}; a parameter may belong to one group only.")
        owner[path] = rule.name
        buckets.setdefault(key, []).append(path)
      if not buckets:
        raise GroupingError(
            f"Rule {rule.name!r} ({rule.pattern!r}) matches no parameter of this model "
            f"(after keep_random={tuple(keep_random)}); parameters are named like "
            f"{', '.join(candidates[:3])}.")
      result += [Group(rule.group_name(k), tuple(v)) for k, v in buckets.items()]
    return result


GROUPINGS: Dict[str, Grouping] = {}


def register_grouping(name: str, rules: Sequence[Rule]) -> Grouping:
  """Adds a grouping (a scheme is then `<name>_grouping___<procedure>`)."""
  if not re.fullmatch(r"[A-Za-z0-9_]+", name) or "___" in name:
    raise ValueError(f"Invalid grouping name {name!r}.")
  GROUPINGS[name] = Grouping(tuple(rules))
  return GROUPINGS[name]


# The paper's groupings (PAPER_FACTS 9.2), over the parameters left after keep_random.
register_grouping("per_param", [Rule("param", r".*", EACH)])
register_grouping("across_ALL_layer_AND_per_layer", [
    Rule("layer_kernels", LAYER_KERNEL),
    Rule("norms", ANY_NORM),
    Rule("relpos", RELPOS),
])
register_grouping("across_ALL_layer", [
    Rule("attention", ATTENTION_KERNEL, by=("proj",)),
    Rule("mlp", MLP_KERNEL),
    Rule("pre_mlp_layer_norm", PRE_MLP_NORM),
    Rule("pre_attention_layer_norm", PRE_ATTENTION_NORM),
    Rule("final_norms", FINAL_NORM),
    Rule("relpos", RELPOS),
])
register_grouping("per_layer", [
    Rule("layer_kernels", LAYER_KERNEL, by=("stack", "layer")),
    Rule("layer_norms", LAYER_NORM, by=("stack", "layer")),
    Rule("final_norm", FINAL_NORM, EACH),
    Rule("relpos", RELPOS, EACH),
])
register_grouping("preattnln_per_param", [Rule("pre_attention_layer_norm", PRE_ATTENTION_NORM, EACH)])
register_grouping("premlpln_per_param", [Rule("pre_mlp_layer_norm", PRE_MLP_NORM, EACH)])
register_grouping("qkvo_per_param", [Rule("attention", ATTENTION_KERNEL, EACH)])
register_grouping("mlp_per_param", [Rule("mlp", MLP_KERNEL, EACH)])
# Two of the research variants (Section 9.2's last paragraph).
register_grouping("relpos_per_param", [Rule("relpos", RELPOS, EACH)])
register_grouping("preattnln_across_ALL_layer", [Rule("pre_attention_layer_norm", PRE_ATTENTION_NORM)])


# Named parameter sets of the custom-value experiments (the paper's `mar4param_to_regex_dic`
# keys, plus pre_attn_ln for Table 3's pair); any other key is taken as a full-match pattern.
PARAMETER_SETS: Mapping[str, str] = {
    "pre_self_attn_ln": (r"encoder/layers_\d+/pre_attention_layer_norm/scale"
                         r"|decoder/layers_\d+/pre_self_attention_layer_norm/scale"),
    "pre_cross_attn_ln": r"decoder/layers_\d+/pre_cross_attention_layer_norm/scale",
    "pre_attn_ln": PRE_ATTENTION_NORM,
    "pre_mlp_ln": PRE_MLP_NORM,
    "q": rf"{LAYER}/[^/]*attention/query/kernel",
    "k": rf"{LAYER}/[^/]*attention/key/kernel",
    "v": rf"{LAYER}/[^/]*attention/value/kernel",
    "o": rf"{LAYER}/[^/]*attention/out/kernel",
    "mlp": MLP_KERNEL,
    "enc_relpos": r"encoder/relpos_bias/rel_embedding",
    "dec_relpos": r"decoder/relpos_bias/rel_embedding",
    "after_enc_ln": r"encoder/encoder_norm/scale",
    "after_dec_ln": r"decoder/decoder_norm/scale",
}


def parameter_set_pattern(key: str) -> str:
  """The full-match pattern of a named parameter set, or `key` itself as a pattern."""
  return PARAMETER_SETS.get(key, key)

