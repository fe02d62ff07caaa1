"""Analysis settings for operations text, shared by every index.

`ops_text` (the main field): English possessives stripped, standard tokenizer, lowercase, ASCII folding,
English stop words and stemming, so "connections timing out" matches "connection timeout".
`ops_exact` (the `.exact` sub-field): whitespace tokens with surrounding punctuation stripped,
lowercased and folded but not stemmed or split, so identifiers such as `OOMKilled`,
`payment-service`, `ECONNREFUSED` or `10.0.0.1` stay whole and match exactly.
"""

ANALYSIS = {
    "char_filter": {
        # English possessives ("pod's" -> "pod"), done as a char filter: osmem's possessive
        # stemmer makes every query term match.
        "ops_possessive": {"type": "pattern_replace", "pattern": "['\u2019]s\\b", "replacement": ""},
        "ops_punct": {"type": "pattern_replace", "pattern": "[^\\p{L}\\p{N}_.\\-/:]+|[.:]+(?:\\s|$)",
                      "replacement": " "},
    },
    "filter": {
        "ops_stop": {"type": "stop", "stopwords": "_english_"},
        "ops_stemmer": {"type": "stemmer", "language": "english"},
    },
    "analyzer": {
        "ops_text": {"type": "custom", "tokenizer": "standard", "char_filter": ["ops_possessive"],
                     "filter": ["lowercase", "asciifolding", "ops_stop", "ops_stemmer"]},
        "ops_exact": {"type": "custom", "tokenizer": "whitespace", "char_filter": ["ops_possessive", "ops_punct"],
                      "filter": ["lowercase", "asciifolding"]},
    },
}


def text_field(**extra) -> dict:
    """A text field analysed as operations text, with an `.exact` sub-field for identifiers."""
    return {"type": "text", "analyzer": "ops_text",
            "fields": {"exact": {"type": "text", "analyzer": "ops_exact"}}, **extra}


KEYWORD = {"type": "keyword"}
