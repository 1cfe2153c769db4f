"""Every closed list of values a config key or an option takes, in one place that imports
nothing heavy: the recipes' validation and the CLI's `click.Choice`s both read them here."""

CELLS = ("simple_rnn", "gru", "lstm")
TOKENIZERS = ("auto", "char", "whitespace")
SIDE_TOKENIZERS = (*TOKENIZERS, "sentencepiece")  # a Side may also learn subwords
SWITCH = ("auto", "on", "off")
DISTRIBUTE = ("auto", "none", "mirrored", "multi-worker")  # train --distribute
PRECISIONS = ("off", "float16", "bfloat16")  # train --mixed-precision

# sentiment
POOLINGS = ("last", "max", "mean")

# ner
SCHEMES = ("iob1", "bio", "bioes", "bmes")
SCHEME_NAMES = ("auto", "iob1", "bio", "iob2", "bioes", "iobes", "bmes")  # with aliases
CHAR_FEATURES = ("auto", "cnn", "none")
NER_TOKENIZERS = ("auto", *TOKENIZERS)  # auto: characters for character-level data

# translation and caption
ATTENTIONS = ("bahdanau", "luong", "none")

# caption
APPLICATIONS = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_b0",
                "resnet50", "densenet121", "vgg16")
ENCODERS = ("cnn", "features", *APPLICATIONS)
MAP_POOLINGS = ("flatten", "mean")

# lm
LEVELS = ("auto", "char", "word")
WORD_TOKENIZERS = ("whitespace", "auto")
