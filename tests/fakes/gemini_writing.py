"""Writing analysis by the fake Gemini server: rule-based errors, feedback and a CEFR estimate."""

import re

LEVELS = ("A1", "A2", "B1", "B2", "C1", "C2")

MISSPELLINGS = {
    "recieve": "receive", "definately": "definitely", "wich": "which", "becuase": "because",
    "becouse": "because", "tommorow": "tomorrow", "tomorow": "tomorrow", "seperate": "separate",
    "occured": "occurred", "untill": "until", "beleive": "believe", "freind": "friend",
    "goverment": "government", "adress": "address", "accomodate": "accommodate", "wierd": "weird",
    "thier": "their", "alot": "a lot", "truely": "truly", "begining": "beginning",
    "enviroment": "environment", "neccessary": "necessary", "realy": "really", "sucess": "success",
    "writting": "writing", "langauge": "language", "grammer": "grammar", "teh": "the",
    "comming": "coming", "wensday": "Wednesday", "arguement": "argument", "familly": "family",
}
# Learner phrasings that are wrong word choices rather than typos.
VOCABULARY = {
    "make a photo": "take a photo", "do a mistake": "make a mistake", "more better": "better",
    "informations": "information", "advices": "advice", "explain me": "explain to me",
    "discuss about": "discuss", "make homework": "do homework", "says me": "tells me",
}
# Words after which "he go" is correct ("does he go", "let it go").
AUXILIARIES = {"do", "does", "did", "can", "could", "will", "would", "shall", "should", "may",
               "might", "must", "let", "lets", "make", "makes", "help", "to", "not", "why", "won't"}
VERBS = ("go have do want like make say get know think take see come need work live play study "
         "watch eat drink read write speak try finish wash love hate walk run buy").split()
THIRD_PERSON = re.compile(r"\b(he|she|it)\s+(don't|" + "|".join(VERBS) + r")\b", re.I)
LOWER_I = re.compile(r"(?<![\w'])i(?=\b(?!\.e\.))")
DOUBLED = re.compile(r"\b(\w+)\s+(\1)\b", re.I)
SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([a-z]\w*)")


def match_case(word, model):
    """Give the replacement the capitalisation of the word it replaces."""
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def third_person(verb):
    """Conjugate a base verb for he/she/it."""
    special = {"have": "has", "do": "does", "go": "goes", "don't": "doesn't"}
    if verb in special:
        return special[verb]
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def find_errors(text):
    """Find (position, error) pairs with simple, deterministic rules."""
    found = []

    def add(pos, kind, wrong, right, why):
        if wrong != right:
            found.append((pos, {"type": kind, "text": wrong, "correction": right, "explanation": why}))

    for m in re.finditer(r"[A-Za-z]+", text):
        right = MISSPELLINGS.get(m.group().lower())
        if right:
            add(m.start(), "spelling", m.group(), match_case(right, m.group()),
                f"'{m.group()}' is misspelled; the correct spelling is '{right}'.")
    lower = text.lower()
    for wrong, right in VOCABULARY.items():
        for m in re.finditer(r"\b" + re.escape(wrong) + r"\b", lower):
            add(m.start(), "vocabulary", text[m.start():m.end()], right,
                f"Native speakers say '{right}' rather than '{wrong}'.")
    for m in LOWER_I.finditer(text):
        add(m.start(), "spelling", "i", "I", "The pronoun 'I' is always written with a capital letter.")
    for m in DOUBLED.finditer(text):
        if m.group(1).lower() not in {"that", "had"}:
            add(m.start(), "grammar", m.group(), m.group(1), f"The word '{m.group(1)}' is repeated.")
    for m in THIRD_PERSON.finditer(text):
        before = re.findall(r"[\w']+", text[:m.start()])
        if before and before[-1].lower() in AUXILIARIES:
            continue
        verb = m.group(2)
        add(m.start(), "grammar", m.group(), f"{m.group(1)} {match_case(third_person(verb.lower()), verb)}",
            f"With '{m.group(1).lower()}' the present simple verb takes -s: '{third_person(verb.lower())}'.")
    for m in SENTENCE_START.finditer(text):
        word = m.group(1)
        if word != "i" and not text[:m.start(1)].rstrip().lower().endswith(("i.e.", "e.g.")):
            add(m.start(1), "spelling", word, word.capitalize(), "A sentence starts with a capital letter.")
    for m in re.finditer(r"(\S+) {2,}(\S+)", text):
        add(m.start(), "style", m.group(), f"{m.group(1)} {m.group(2)}", "Use a single space between words.")
    stripped = text.rstrip()
    if stripped and stripped[-1] not in ".!?\"')…":
        tail = " ".join(stripped.split()[-3:])
        add(len(stripped), "punctuation", tail, tail + ".", "End the sentence with a full stop.")
    unique = {(e["text"], e["correction"]): (pos, e) for pos, e in sorted(found, key=lambda f: f[0])}
    return [e for _, e in sorted(unique.values(), key=lambda f: f[0])]


def assess_level(words, errors):
    """Deterministic CEFR estimate from length, word length and vocabulary variety."""
    n = len(words)
    avg = sum(map(len, words)) / n if n else 0.0
    variety = len({w.lower() for w in words}) / n if n else 0.0
    score = sum(v >= t for v, t in ((n, 20), (n, 50), (n, 100), (n, 200)))
    score += sum(avg >= t for t in (3.8, 4.3, 4.8, 5.3))
    score += sum(variety >= t for t in (0.45, 0.55, 0.65, 0.75)) if n >= 10 else 0
    density = 100 * len(errors) / n if n else 0
    score -= (density > 5) + (density > 10)
    level = LEVELS[max(0, min(5, score // 2))]
    rationale = (f"{n} words, average word length {avg:.1f} letters, {variety:.0%} distinct words "
                 f"and {len(errors)} errors ({density:.1f} per 100 words).")
    return {"level": level, "confidence": round(min(0.95, 0.5 + n / 500), 2), "rationale": rationale}


AREAS = {
    "spelling": ("Spelling and capitalisation", "Spelling practice",
                 "Write each corrected word three times in a sentence of your own: {words}."),
    "grammar": ("Grammar: verb agreement and word order", "Subject-verb agreement drill",
                "Rewrite these phrases correctly and make two new examples of each: {words}."),
    "punctuation": ("Punctuation at the end of sentences", "Punctuation check",
                    "Read your text aloud and mark where each sentence ends; fix: {words}."),
    "vocabulary": ("Natural word choice and collocations", "Collocation practice",
                   "Learn the natural phrase and use it in a short dialogue: {words}."),
    "style": ("Tidy layout and concise style", "Proofreading pass",
              "Proofread for extra spaces and repeated words: {words}."),
}


def analyze_writing(inputs):
    """Analyse a learner's text: errors, feedback and a CEFR estimate."""
    text = str(inputs.get("text", ""))
    words = re.findall(r"[A-Za-z']+", text)
    errors = find_errors(text)[:25]
    counts = {}
    for e in errors:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    cefr = assess_level(words, errors)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no errors"
    feedback = f"Found {len(errors)} issue{'s' * (len(errors) != 1)} in {len(words)} words ({summary})."
    feedback += f" The writing reads at about {cefr['level']} level."
    if inputs.get("level"):
        feedback += f" You told us your level is {inputs['level']}."
    if inputs.get("native_language"):
        feedback += f" As a {inputs['native_language']} speaker, compare word order and articles with your language."
    strengths = []
    if "spelling" not in counts and words:
        strengths.append("Accurate spelling")
    if len({w.lower() for w in words}) >= 0.7 * max(1, len(words)) and len(words) >= 10:
        strengths.append("Varied vocabulary")
    if len(words) >= 40:
        strengths.append("Develops ideas at length")
    if not errors:
        strengths.append("No mechanical errors found")
    strengths = strengths or ["The message is understandable"]
    areas, tasks = [], []
    for kind in sorted(counts):
        area, title, desc = AREAS[kind]
        sample = ", ".join(sorted({f"'{e['text']}' -> '{e['correction']}'" for e in errors if e["type"] == kind})[:3])
        areas.append(area)
        tasks.append({"title": title, "description": desc.format(words=sample)})
    if not areas:
        areas = ["Use more complex sentences with linking words"]
        tasks = [{"title": "Extend your writing",
                  "description": "Rewrite the text adding because, although and however."}]
    return {"errors": errors, "feedback": feedback, "strengths": strengths, "improvement_areas": areas,
            "recommended_tasks": tasks, "cefr_assessment": cefr}
