"""Container names and IDs: Docker's rules, generated names, lookups by prefix.

Names are stored without the leading "/" (the API shows ``"/name"``). A
generated name is ``adjective_surname`` like Docker's; IDs are 64 hex digits
and any unique prefix finds a container (after exact ID and exact name).
"""

from __future__ import annotations

import re
import secrets
from typing import Callable, Iterable

from dockyard import errdefs

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring "
    "brave busy charming clever compassionate competent condescending confident cool cranky crazy "
    "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy "
    "gracious great happy hardcore heuristic hopeful hungry infallible inspiring intelligent "
    "interesting jolly jovial keen kind laughing loving lucid magical modest musing mystifying "
    "naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive practical "
    "priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly "
    "sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat "
    "vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()

_SURNAMES = (
    "agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin babbage "
    "banach banzai bardeen bartik bassi beaver bell benz bhabha bhaskara black blackburn blackwell "
    "bohr booth borg bose bouman boyd brahmagupta brattain brown buck burnell cannon carson cartwright "
    "carver cerf chandrasekhar chaplygin chatelet chatterjee chaum chebyshev clarke cohen colden "
    "cori cray curie curran darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky "
    "easley edison einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel "
    "fermat fermi feynman franklin gagarin galileo galois ganguly gates gauss germain goldberg "
    "goldstine goldwasser golick goodall gould greider grothendieck haibt hamilton haslett hawking "
    "heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle "
    "hypatia ishizaka jackson jang jemison jennings jepsen johnson joliot jones kalam kapitsa kare "
    "keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport "
    "leakey leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira margulis "
    "matsumoto maxwell mayer mccarthy mcclintock mclaren mclean mcnulty meitner mendel mendeleev "
    "merkle mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann newton "
    "nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike "
    "poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen "
    "rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern sinoussi "
    "snyder solomon spence stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson "
    "torvalds tu turing varahamihira vaughan villani visvesvaraya volhard wescoff wilbur wiles "
    "williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def validate_name(name: str) -> str:
    """The stored form (no leading "/") of a user-given name; 400 in Docker's words if invalid."""
    if not VALID_NAME.match(name):
        raise errdefs.InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def generate_name(taken: Callable[[str], bool]) -> str:
    """A free ``adjective_surname`` (with a digit suffix after a few collisions, as Docker does)."""
    for attempt in range(10):
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
        if name == "boring_wozniak":  # Steve Wozniak is not boring (Docker's one exception)
            continue
        if attempt > 3:
            name += str(secrets.randbelow(10))
        if not taken(name):
            return name
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}{secrets.token_hex(3)}"


def new_id(taken: Callable[[str], bool]) -> str:
    """64 hex digits whose 12-digit short form is not all digits (Docker avoids those) nor taken."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit() and not taken(cid):
            return cid


def name_conflict(name: str, holder_id: str) -> errdefs.Conflict:
    return errdefs.Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{holder_id}". '
        "You have to remove (or rename) that container to be able to reuse that name.")


def find(ref: str, ids_and_names: Iterable[tuple[str, str]]) -> str:
    """The container ID for ``ref``: exact ID, then exact name ("/x" or "x"), then a unique ID prefix."""
    pairs = list(ids_and_names)
    name = ref[1:] if ref.startswith("/") else ref
    for cid, cname in pairs:
        if cid == ref:
            return cid
    for cid, cname in pairs:
        if cname == name:
            return cid
    if ref:
        matches = [cid for cid, _ in pairs if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise errdefs.InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
    raise errdefs.no_such_container(ref)
