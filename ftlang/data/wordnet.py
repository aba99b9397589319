"""Offline WordNet for nlpaug's SynonymAug: NLTK's reader over the Debian wordnet files, plus the two
pieces that cannot be downloaded here: the `lexnames` file (generated: the 45 standard lexicographer
file names) and a part-of-speech tagger (a WordNet lookup: a word's most frequent sense decides).
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

# lexicographer file number → (name, syntactic category: 1 noun, 2 verb, 3 adj, 4 adv), WordNet 3.0 lexnames(5)
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_PENN = {"n": "NN", "v": "VB", "a": "JJ", "s": "JJ", "r": "RB"}

#: function words are never replaced: their WordNet "synonyms" (is → be, exist) are wrong in context
STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from as into onto over under
is are was were be been being am do does did done have has had having can could will would shall should may might
must i you he she it we they me him her us them my your his its our their this that these those what which who
whom whose when where why how not no yes so than too very just also only all any each some such there here""".split())


class WordNetMissing(RuntimeError):
    pass


def wordnet_source() -> Path:
    return Path(os.environ.get("FTLANG_WORDNET_DIR", "/usr/share/wordnet"))


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


@cache
def nltk_data_dir() -> Path:
    """A private nltk_data/corpora/wordnet: copies of the Debian files (NLTK 3.10 refuses symlinks
    and hard links that lead outside its root), lexnames generated beside them."""
    src = wordnet_source()
    if not (src / "data.noun").is_file():
        raise WordNetMissing(f"WordNet is not installed at {src} (apt-get install wordnet-base "
                             "wordnet-sense-index, or set FTLANG_WORDNET_DIR)")
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ftlang" / "nltk_data"
    target = base / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        link = target / f.name
        if f.is_file() and not link.exists():
            tmp = target / f".{f.name}.tmp-{os.getpid()}"
            shutil.copyfile(f, tmp)
            os.replace(tmp, link)
    lex = target / "lexnames"
    if not lex.exists():
        tmp = target / f".lexnames.tmp-{os.getpid()}"
        tmp.write_text(lexnames_text(), encoding="utf-8")
        os.replace(tmp, lex)
    return base


@cache
def wordnet():
    """NLTK's WordNet reader on the private directory."""
    import nltk

    base = str(nltk_data_dir())
    if base not in nltk.data.path:
        nltk.data.path.insert(0, base)
    from nltk.corpus import wordnet as wn

    wn.ensure_loaded()
    return wn


def pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
    """Penn-style tags from WordNet: a word's most frequent sense gives its part of speech; words
    WordNet does not know (and stopwords) get "XX", which SynonymAug leaves alone."""
    wn = wordnet()
    out = []
    for tok in tokens:
        tag = "XX"
        if tok.isalpha() and tok.lower() not in STOPWORDS:
            synsets = wn.synsets(tok.lower())
            if synsets:
                tag = _PENN.get(synsets[0].pos(), "XX")
        out.append((tok, tag))
    return out
