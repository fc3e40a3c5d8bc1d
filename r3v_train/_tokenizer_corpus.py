"""Generated training text for the tiny models' byte-level BPE tokenizer.

The text is produced from fixed word lists and templates with a seeded ``random.Random``, so the
same call always yields the same lines (and the trained tokenizer is reproducible). It covers:

* the paper's prompt wording (CoT suffixes per style, "Solution:", "Answer:", refine and select
  prompts, "Options:", "(A)" ...), see ``/work/shared/R3V.md`` and :mod:`r3v_eval.prompts`;
* the synthetic ``shapes`` benchmark vocabulary (colours, shapes, counting and arithmetic);
* digits and arithmetic / comparison symbols (the pre-tokenizer splits every digit on its own,
  as Qwen2's does, so numbers never merge into multi-digit tokens);
* words of the real benchmarks (charts, tables, geometry, web actions, multiple choice) and a
  list of common English words, so that other text still tokenizes reasonably compactly.

Anything outside this text still round-trips exactly: the tokenizer is byte-level.
"""

from __future__ import annotations

import random

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "gray", "grey", "brown",
           "black", "white", "pink")
SHAPES = ("square", "circle", "triangle", "star", "diamond", "hexagon", "cube", "sphere",
          "cylinder", "rectangle", "ball", "block", "object", "shape", "thing")
SIZES = ("small", "large", "big", "tiny")
MATERIALS = ("metal", "rubber", "shiny", "matte", "metallic")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "first", "second", "third", "fourth", "fifth", "last", "half", "twice")
POSITIONS = ("left", "right", "top", "bottom", "middle", "center", "above", "below", "behind",
             "front", "next", "row", "column", "grid", "cell", "corner", "side")

# The paper's prompt literals (R3V.md "Prompt literals"), kept verbatim.
PROMPT_LITERALS = (
    ("First generate a step-by-step solution, then answer the question with a numerical value, "
     "Yes/No, or a word or phrase."),
    ("First generate a step-by-step solution, then answer the question using a single numerical "
     "value (0-10)."),
    ("First generate a step-by-step solution, then answer with the option's letter from the given "
     "choices directly."),
    ("First generate a step-by-step solution, then answer the question using a single word or "
     "phrase."),
    "Answer the question with a numerical value, Yes/No, or a word or phrase.",
    "Answer the question using a single numerical value (0-10).",
    "Answer with the option's letter from the given choices directly.",
    "Answer the question using a single word or phrase.",
    "Let's think step by step.",
    "Answer the question with Chain-of-Thought.",
    "Model's prediction:",
    "Judge the correctness of the model's prediction and refine it.",
    "Model's prediction 1:",
    "Model's prediction 2:",
    "Model's prediction 3:",
    ("Which prediction is correct? Give the final answer with a numerical value, Yes/No, or a word "
     "or phrase."),
    "Which prediction is correct? Give the final answer using a single numerical value (0-10).",
    "Which prediction has the right OCR, reasoning and calculations? Give the final answer.",
    "Which prediction is correct? Give the final answer by selecting the correct option.",
    "Which prediction is correct? Give the final answer using a single word or phrase.",
    "Solution:",
    "Answer:",
    "The answer is",
    "Options:",
    "Choices:",
    "Question:",
    ("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at "
     "the end."),
    "You are a helpful assistant.",
    "A chat between a curious human and an artificial intelligence assistant.",
    "USER:",
    "ASSISTANT:",
    "system",
    "user",
    "assistant",
)

TASK_WORDS = (
    # charts and tables (ChartQA, TabMWP)
    ("chart bar bars line pie graph plot axis value values label legend title year years percent "
     "percentage share number numbers average mean median mode sum difference ratio rate highest "
     "lowest largest smallest maximum minimum increase decrease trend between country countries "
     "people survey data table price prices cost costs dollar dollars cents each per total "
     "amount buy bought sell sold spend spent money change left remaining much many more less "
     "than fewer greater equal frequency stem leaf score scores week day days month months hour "
     "hours minute minutes time times item items store shop ticket tickets group groups unit "
     "units"),
    # geometry (GeoQA, MathVista)
    ("angle angles degree degrees triangle circle radius diameter chord arc tangent point points "
     "line segment parallel perpendicular length area perimeter volume side sides height width "
     "base right acute obtuse isosceles equilateral quadrilateral parallelogram rhombus trapezoid "
     "polygon center diagonal bisector intersect intersects figure shown given find measure "
     "if then so therefore because since thus hence"),
    # web actions (MiniWob)
    ("click type select enter submit button text box field link tab menu option checkbox "
     "input search scroll drag press key login username password email"),
    # reasoning scaffolding
    ("step steps solution answer question questions correct incorrect wrong right prediction "
     "predictions model judge refine reasoning calculation calculations final option options "
     "letter choice choices count counting counted there are is was were be been remove removed "
     "subtract subtracted add added take away objects left exist remain remaining how many what "
     "which who where when why picture image photo shown see visible all other same different "
     "color colour colors colours shape shapes size sizes yes no true false none both either"),
)

COMMON_WORDS = (
    ("the a an of to and in on at for with by from as into about over after before under up "
     "down out off it its this that these those there here they them their he she his her we "
     "our you your i me my not no yes do does did done have has had can could will would should "
     "may might must shall get got make made use used using give gives given go goes went come "
     "came know knows think look looks find found show shows tell say says said ask asks need "
     "want like also only just very so too then than now new old good best better first last "
     "long short high low big small few most some any every each all both other another such "
     "own same way part place case fact point work world life hand year time day thing man "
     "woman child people state number group problem system program question result end "
     "following above below between through during without within along across around"),
)

ARITH_OPS = ("+", "-", "*", "/", "=", "×", "÷", "<", ">", "%", "$", "(", ")", ".", ",", ":")


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "sh", "ch")):
        return noun + "es"
    return noun + "s"


def _shape_lines(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        c1, c2 = rng.sample(COLOURS, 2)
        s1, s2 = rng.sample(SHAPES, 2)
        a, b = rng.randint(0, 10), rng.randint(0, 10)
        size, mat = rng.choice(SIZES), rng.choice(MATERIALS)
        pos = rng.choice(POSITIONS)
        k = rng.randint(0, a) if a else 0
        templates = (
            f"How many {c1} {_plural(s1)} are there?",
            f"Remove all {c1} {_plural(s1)}. How many objects are left?",
            f"Subtract all {size} {mat} {_plural(s1)}. How many objects are left?",
            f"Add {b} {c2} {_plural(s2)}. How many objects exist?",
            f"Add {b} {c2} {_plural(s2)}. How many {_plural(s2)} are there in total?",
            f"How many {_plural(s1)} are in the {pos} {rng.choice(('row', 'column'))}?",
            f"There are {a} {c1} {_plural(s1)} and {b} {c2} {_plural(s2)} in the grid.",
            f"There is {a} {c1} {s1} in row {rng.randint(1, 4)}, column {rng.randint(1, 4)}.",
            f"Count the {c1} {_plural(s1)}: there are {a}.",
            f"Remove {k} of them: {a} - {k} = {a - k}.",
            f"In total there are {a} + {b} = {a + b} objects.",
            f"Is the {c1} {s1} to the {pos} of the {c2} {s2}?",
            f"What color is the {s1} in the {pos}? Answer: {c1}",
            f"What shape is {c1}? Answer: {s1}",
            f"the {c1} {s1}, a {c2} {s2}, {a} {c1} {_plural(s1)}, {c2} {_plural(s2)}",
        )
        out.append(rng.choice(templates))
    return out


def _rationale_lines(rng: random.Random, n: int, head: str) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        c1, c2 = rng.sample(COLOURS, 2)
        s1, s2 = rng.sample(SHAPES, 2)
        total, a = rng.randint(1, 10), rng.randint(0, 10)
        a = min(a, total)
        b = rng.randint(0, 10)
        op = rng.choice(("remove", "add"))
        if op == "remove":
            steps = [f"There are {total} objects in the picture.",
                     f"There are {a} {c1} {_plural(s1)}.",
                     f"Remove all {c1} {_plural(s1)}: {total} - {a} = {total - a}."]
            answer = total - a
        else:
            steps = [f"There are {total} objects in the picture.",
                     f"Add {b} {c2} {_plural(s2)}.",
                     f"{total} + {b} = {total + b}."]
            answer = total + b
        body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        out.append(f"{head}{body}\n\nAnswer:\n{answer}")
    return out


def _arithmetic_lines(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 99)
        kind = rng.randrange(8)
        if kind == 0:
            out.append(f"{a} + {b} = {a + b}")
        elif kind == 1:
            out.append(f"{a} - {b} = {a - b}")
        elif kind == 2:
            out.append(f"{a} * {b} = {a * b}")
        elif kind == 3:
            out.append(f"{a} / {max(b, 1)} = {round(a / max(b, 1), 2)}")
        elif kind == 4:
            out.append(f"${a}.{b:02d} × {b % 10} = ${round((a + b / 100) * (b % 10), 2)}")
        elif kind == 5:
            out.append(f"{b}% of {a} is {round(a * b / 100, 2)}; {a} > {b}, {b} < {a}.")
        elif kind == 6:
            out.append(f"{a}/{max(b, 1)} ≈ {round(a / max(b, 1), 3)}, ∠ABC = {b}°, ({a}, {b})")
        else:
            out.append(" ".join(str(rng.randint(0, 10)) for _ in range(8)))
    return out


def _choice_lines(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    letters = "ABCDE"
    for _ in range(n):
        k = rng.randint(2, 5)
        opts = rng.sample(range(100), k)
        lines = "\n".join(f"({letters[i]}) {v}" for i, v in enumerate(opts))
        pick = letters[rng.randrange(k)]
        opt_line = " ".join(f"{letters[i]}. {v}" for i, v in enumerate(opts))
        out.append(f"Options:\n{lines}\nAnswer: ({pick})\n{opt_line}\nThe answer is {pick}.")
    return out


def _prompt_lines(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    for _ in range(n):
        lit = rng.choice(PROMPT_LITERALS)
        q = rng.choice(_shape_lines(rng, 1))
        kind = rng.randrange(3)
        if kind == 0:
            out.append(f"{q}\n{lit}")
        elif kind == 1:
            neg = _rationale_lines(rng, 1, "Solution:\n")[0]
            out.append(f"{q}\nModel's prediction:\n{neg}\nJudge the correctness of the model's "
                       "prediction and refine it.")
        else:
            cands = _rationale_lines(rng, 3, rng.choice(("Solution:\n", "")))
            body = "".join(f"\nModel's prediction {i}:\n{c}" for i, c in enumerate(cands, 1))
            out.append(f"{q}{body}\nWhich prediction is correct? Give the final answer using a "
                       "single numerical value (0-10).")
    return out


def _word_lines(rng: random.Random, n: int) -> list[str]:
    words = " ".join(TASK_WORDS + COMMON_WORDS).split()
    out = []
    for _ in range(n):
        chosen = [rng.choice(words) for _ in range(rng.randint(4, 14))]
        chosen[0] = chosen[0].capitalize() if rng.random() < 0.5 else chosen[0]
        out.append(" ".join(chosen) + rng.choice((".", "?", ",", "", ":")))
    return out


def corpus_lines(seed: int = 0, scale: int = 1) -> list[str]:
    """The tokenizer's training text: a deterministic list of lines (``scale`` multiplies size)."""
    rng = random.Random(seed)
    lines: list[str] = []
    lines += list(PROMPT_LITERALS) * (20 * scale)
    lines += _prompt_lines(rng, 400 * scale)
    lines += _shape_lines(rng, 1500 * scale)
    lines += _rationale_lines(rng, 500 * scale, "Solution:\n")
    lines += _rationale_lines(rng, 200 * scale, "")
    lines += _arithmetic_lines(rng, 800 * scale)
    lines += _choice_lines(rng, 300 * scale)
    lines += _word_lines(rng, 1500 * scale)
    # every vocabulary word, bare, capitalised and with a leading space, a few times
    vocab = set(COLOURS + SHAPES + SIZES + MATERIALS + NUMBER_WORDS + POSITIONS)
    vocab |= {_plural(s) for s in SHAPES}
    vocab |= set(" ".join(TASK_WORDS + COMMON_WORDS).split())
    for w in sorted(vocab):
        lines += [f"{w} {w.capitalize()} {w}."] * (5 * scale)
    lines += [" ".join(ARITH_OPS)] * (10 * scale)
    # the chat scaffolding around the special tokens (ChatML and LLaVA-1.5 conversations)
    for q in _shape_lines(rng, 200 * scale):
        lines.append(f"system\nYou are a helpful assistant.\nuser\n{q}\nassistant\n")
        lines.append(f"USER: {q} ASSISTANT: {rng.randint(0, 10)}")
        lines.append(f"USER: \n{q}\nLet's think step by step. ASSISTANT:")
    return lines
