"""Synthetic review dumps in the Amazon Reviews 2023 format (``reviews.jsonl`` + ``meta.jsonl``).

The data has the shape of the real thing so downstream models have signal to find:

* Zipf-like item popularity and heavy-tailed user activity (at 1.7M users / 2M ratings most
  users rate once, a few rate dozens of items);
* every user has 1-2 preferred categories holding ~85% of their ratings, and rates higher there,
  so implicit ALS can learn within-category co-occurrence;
* product titles are built from per-category nouns, modifiers, brands and model numbers, so
  semantic search (and exact keyword search on tokens like ``KT-450``) has something to match.

Everything is drawn as numpy arrays; lines are written with a hand-written f-string template
(all strings come from a JSON-safe vocabulary, so no escaping is needed) and compressed on a
background thread, which keeps the reference scale (2M reviews) well under half a minute.
"""

from __future__ import annotations

import gzip as _gzip
import io
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["SampleResult", "generate_sample"]


@dataclass(frozen=True)
class SampleResult:
    reviews_path: Path
    meta_path: Path
    users: int  # distinct users actually written
    items: int  # distinct rated items actually written
    ratings: int  # review lines written
    products: int  # meta lines written


@dataclass(frozen=True)
class _Cat:
    name: str
    weight: float  # share of the catalog
    price: float  # median price, USD
    subcats: str  # "Sub: Noun|Noun; Sub: Noun|..."
    adjs: str
    brands: str
    uses: str
    specs: str


# Order matters: `categories=k` keeps the first k. No '"' or '\\' anywhere (lines are not escaped).
_CATALOG: tuple[_Cat, ...] = (
    _Cat("Electronics", 1.6, 35.0,
         "Headphones: Wireless Earbuds|Over-Ear Headphones|Sports Earphones; "
         "Portable Audio: Bluetooth Speaker|Soundbar|Portable Radio; "
         "Chargers & Power: USB-C Charger|Power Bank|Wireless Charging Pad|HDMI Cable; "
         "Smart Home: Smart Plug|Security Camera|Video Doorbell",
         "Wireless|Noise Cancelling|Waterproof|Fast Charging|Portable|Ultra Slim|Rechargeable",
         "Soundcore|Voltix|Auralink|Zentech|Brightwave|Nexon|Kivo",
         "for iPhone and Android|for Running|for Travel|for Home Office|for Gym Workouts",
         "40H Playtime|65W|10000mAh|2-Pack|4K HDR|1080p HD|Bluetooth 5.3"),
    _Cat("Home & Kitchen", 1.6, 30.0,
         "Cookware: Nonstick Frying Pan|Cast Iron Skillet|Stock Pot|Saucepan; "
         "Small Appliances: Air Fryer|Electric Kettle|Coffee Maker|Blender|Toaster; "
         "Kitchen Utensils: Chef Knife|Cutting Board|Silicone Spatula Set|Measuring Cups",
         "Stainless Steel|Nonstick|Dishwasher Safe|BPA Free|Programmable|Compact|Heavy Duty",
         "Cookwell|Chefora|Kitchara|HomeBrew|Panora|Epicura",
         "for Induction Cooktops|for Home Cooking|for Small Kitchens|for Baking",
         "10 Inch|5.8 Quart|1.7 Liter|12 Cup|1500W|8-Piece"),
    _Cat("Clothing, Shoes & Jewelry", 1.4, 25.0,
         "Men: T-Shirt|Hoodie|Chino Pants; Women: Maxi Dress|Leggings|Cardigan; "
         "Shoes: Running Shoes|Sneakers|Hiking Boots; "
         "Accessories: Baseball Cap|Wool Socks|Leather Belt",
         "Cotton|Slim Fit|Moisture Wicking|Casual|Breathable|Lightweight|Stretch",
         "Threadline|UrbanKnit|Cozyfit|Northwear|Lumo|Stridex",
         "for Men|for Women|for Everyday Wear|for Winter|for Workout",
         "Pack of 3|Regular Fit|Relaxed Fit|Pack of 6"),
    _Cat("Books", 1.2, 14.0,
         "Fiction: Mystery Novel|Fantasy Novel|Romance Novel|Detective Thriller; "
         "Nonfiction: Cookbook|Memoir|Self-Help Guide|History of the Sea; "
         "Children's Books: Picture Book|Activity Book; Education: Study Guide|Workbook",
         # Books reuse the fields: adjs/specs are title words, brands are authors, uses formats.
         "Silent|Hidden|Last|Midnight|Golden|Broken|Winter|Secret|Lost|Crimson",
         "Jane Holloway|Marcus Reed|Elena Park|Tom Whitaker|Priya Nair|Samuel Ortiz|Clara Moss",
         "Paperback|Hardcover|Kindle Edition|Large Print",
         "Harbor|Garden|River|Letter|Kingdom|Promise|Orchard|Lighthouse|Road|Island"),
    _Cat("Sports & Outdoors", 1.0, 30.0,
         "Fitness: Yoga Mat|Resistance Bands|Adjustable Dumbbells|Jump Rope; "
         "Running: Hydration Vest|Running Belt|Sports Water Bottle; "
         "Camping & Hiking: Camping Tent|Sleeping Bag|Hiking Backpack|Headlamp; "
         "Cycling: Bike Helmet|Bike Light",
         "Lightweight|Non-Slip|Breathable|Durable|Foldable|Extra Thick|Ultralight|Reflective",
         "TrailPeak|Summitix|FitCore|Ridgeline|AeroStride|Kinetix",
         "for Men and Women|for Hiking|for Home Workout|for Camping|for Trail Running",
         "6mm|2 Person|20 lbs|30L|Set of 5|32 oz"),
    _Cat("Beauty & Personal Care", 1.0, 18.0,
         "Skin Care: Vitamin C Serum|Hyaluronic Acid Moisturizer|Face Cleanser|Mineral Sunscreen; "
         "Hair Care: Hair Dryer|Flat Iron|Argan Oil Shampoo|Curling Wand; "
         "Makeup: Mascara|Makeup Brush Set|Matte Lipstick",
         "Hydrating|Fragrance Free|Organic|Cruelty Free|Long Lasting|Ionic|Vegan",
         "Lumiere|Glowra|Velvety|PureBloom|Aurelle|Skinova",
         "for Dry Skin|for Sensitive Skin|for All Hair Types|for Women",
         "1 fl oz|SPF 50|1875W|12-Piece|Pack of 2"),
    _Cat("Toys & Games", 0.9, 22.0,
         "Building Toys: Building Blocks Set|Magnetic Tiles|Marble Run; "
         "Games & Puzzles: Board Game|Card Game|Jigsaw Puzzle; "
         "Outdoor Play: Water Blaster|Kids Scooter|Kite; "
         "Dolls & Figures: Plush Teddy Bear|Dollhouse|Action Figure|Remote Control Car",
         "Educational|Colorful|STEM|Interactive|Classic|Family Friendly|Creative",
         "PlayNest|Brickly|FunForge|Tinkertot|WonderBox|Jollify",
         "for Kids Ages 3+|for Boys and Girls|for Family Game Night|for Toddlers",
         "1000 Pieces|120 Pieces|2-4 Players|12 Inch"),
    _Cat("Tools & Home Improvement", 0.9, 40.0,
         "Power Tools: Cordless Drill|Impact Driver|Circular Saw; "
         "Hand Tools: Screwdriver Set|Socket Set|Tape Measure; "
         "Lighting: LED Light Bulbs|Ceiling Fan|Motion Sensor Light; Hardware: Smart Door Lock",
         "Cordless|Brushless|Magnetic|Heavy Duty|Compact|Dimmable|Professional",
         "Torqwell|Buildmax|Ironclad|Craftline|Voltcraft",
         "for DIY Projects|for Woodworking|for Home Repair|for Garage",
         "20V|2 Batteries|60W Equivalent|100-Piece|25 ft"),
    _Cat("Health & Household", 0.9, 20.0,
         "Vitamins & Supplements: Vitamin D3 Supplement|Multivitamin Gummies|Fish Oil Capsules; "
         "Health Monitors: Blood Pressure Monitor|Digital Thermometer|Pulse Oximeter; "
         "Household Supplies: Laundry Detergent Pods|Disinfecting Wipes|Paper Towels; "
         "Oral Care: Electric Toothbrush|Water Flosser",
         "Extra Strength|Sugar Free|Unscented|Clinically Tested|Rechargeable|Non-GMO",
         "VitaCore|Healthora|CleanNest|Nurish|MediPlus",
         "for Adults|for Immune Support|for Sensitive Teeth|for the Whole Family",
         "120 Count|5000 IU|60 Pods|2 Pack"),
    _Cat("Pet Supplies", 0.7, 25.0,
         "Dogs: Dog Bed|Dog Leash|Dog Harness|Chew Toy; "
         "Cats: Cat Litter Box|Cat Scratching Post|Cat Tree|Cat Toy Wand; "
         "Fish & Aquatic Pets: Aquarium Filter|Fish Tank Heater; "
         "Grooming: Pet Grooming Brush|Pet Nail Clipper",
         "Orthopedic|Washable|Reflective|Adjustable|Durable|Self-Cleaning|No-Pull",
         "PawPal|Furbest|Whiskerly|BarkBright|Petora|TailWag",
         "for Large Dogs|for Small Dogs|for Indoor Cats|for Puppies",
         "6 ft|Large|50 Gallon|36 Inch"),
    _Cat("Automotive", 0.7, 35.0,
         "Car Electronics: Dash Cam|Car Phone Mount|Car Charger|Tire Inflator; "
         "Car Care: Car Wash Kit|Microfiber Towels|Car Wax; "
         "Tools & Equipment: Jump Starter|OBD2 Scanner|Torque Wrench; "
         "Interior Accessories: Seat Covers|Floor Mats",
         "Heavy Duty|Universal Fit|Portable|All-Weather|Magnetic|Digital",
         "AutoVex|RoadMate|Drivex|Motorix|GearHead",
         "for Cars and Trucks|for SUV|for Dashboard|for Windshield",
         "2000A|150 PSI|4K|12V"),
    _Cat("Patio, Lawn & Garden", 0.6, 30.0,
         "Gardening Tools: Pruning Shears|Garden Hose|Hose Nozzle|Garden Kneeler; "
         "Planters: Raised Garden Bed|Ceramic Planter|Hanging Planter; "
         "Outdoor Lighting: Solar Path Lights|Outdoor String Lights; "
         "Birding & Wildlife: Bird Feeder|Hummingbird Feeder",
         "Weather Resistant|Expandable|Solar Powered|Heavy Duty|Rust Proof|Galvanized",
         "GreenThumb|Verdana|Bloomfield|YardMaster|Terrava",
         "for Outdoor Plants|for Patio|for Backyard|for Vegetables",
         "50 ft|8 Pack|4x8 ft|10 Inch"),
    _Cat("Office Products", 0.6, 15.0,
         "Writing Supplies: Gel Pens|Mechanical Pencils|Highlighters; "
         "Paper: Spiral Notebook|Sticky Notes|Printer Paper; "
         "Desk Organization: Desk Organizer|File Folders|Label Maker; "
         "Office Furniture: Ergonomic Office Chair|Standing Desk|Monitor Stand",
         "Ergonomic|Refillable|Assorted Colors|Quick Dry|Adjustable|Heavy Duty",
         "Penwell|Deskora|Officium|Paperly|Scribo",
         "for Home Office|for School|for Students|for Journaling",
         "24 Pack|100 Sheets|0.5mm|500 Sheets"),
    _Cat("Baby Products", 0.4, 30.0,
         "Feeding: Baby Bottles|High Chair|Bib Set; Diapering: Diaper Bag|Changing Pad; "
         "Baby Gear: Baby Stroller|Convertible Car Seat|Baby Carrier; "
         "Nursery: Baby Monitor|Swaddle Blanket|Crib Mobile",
         "Anti-Colic|Organic Cotton|Lightweight|Convertible|Soft|BPA Free",
         "Tinytoes|Cuddlebug|Nestling|Babyora|Snugly",
         "for Newborns|for Infants and Toddlers|for Travel",
         "4 Pack|8 oz|0-12 Months"),
    _Cat("Video Games", 0.4, 40.0,
         "Controllers: Wireless Controller|Controller Charging Dock|Racing Wheel; "
         "PC Gaming: Gaming Mouse|Mechanical Keyboard|Gaming Headset|Mouse Pad; "
         "Accessories: Capture Card|Console Cooling Fan",
         "RGB|Wireless|Ergonomic|Programmable|Low Latency|Tournament Grade",
         "Pixelforge|Gamora|Questar|NeoPlay|Respawnix",
         "for PC|for PS5|for Xbox Series X|for Nintendo Switch",
         "16000 DPI|2.4GHz|1000Hz|7.1 Surround"),
    _Cat("Musical Instruments", 0.3, 60.0,
         "Guitars: Acoustic Guitar|Electric Guitar|Guitar Strings|Clip-On Guitar Tuner|Capo; "
         "Keyboards: Digital Piano|MIDI Keyboard Controller; "
         "Recording: Condenser Microphone|Audio Interface|Studio Monitor Headphones; "
         "Drums: Drum Practice Pad|Drumsticks|Cajon",
         "Beginner|Professional|Full Size|Weighted Key|Chromatic|USB",
         "Harmonix|Tonewood|Melodia|Stagecraft|Acoustica",
         "for Beginners|for Recording|for Live Performance|for Kids",
         "88 Key|61 Key|41 Inch|Set of 3"),
)  # fmt: skip
_BOOKS = 3  # index of "Books" in _CATALOG: different title/feature template

# Review vocabulary: per star (1..5), equal-length pools so an index is `(star - 1) * n + k`.
_REVIEW_TITLES = (
    "One Star|Waste of money|Do not buy|Terrible quality|Broke after a week|Returned it",
    "Two Stars|Not great|Disappointed|Cheaply made|Could be better|Not as described",
    "Three Stars|It's okay|Average|Decent for the price|Mixed feelings|Does the job",
    "Four Stars|Pretty good|Good value|Works well|Solid purchase|Nice, with a few quirks",
    "Five Stars|Love it!|Excellent|Highly recommend|Works great|Exactly as described",
)
_REVIEW_OPEN = (
    "Very disappointed.|Save your money.|Would not buy again.|Total letdown.",
    "Not what I hoped for.|Expected more.|Meh.|Quality is lacking.",
    "It is fine.|Average overall.|Some pros and cons.|Okay for the price.",
    "Pretty happy with this.|Good product.|Does what it says.|Nice quality overall.",
    "Absolutely love it!|Fantastic purchase.|Exceeded my expectations.|Great quality!",
)
_REVIEW_BODY = (  # "pre {noun} post"; the noun is never a verb subject (plurals read fine)
    "Returned the|because it arrived damaged.;Bought the|and it broke after two weeks.;"
    "Avoid the|at all costs.;I regret buying the|for this price.",
    "Got the|and it was smaller than pictured.;Bought the|but the quality feels cheap.;"
    "Ordered the|and it had a few defects.;Not impressed with the|overall.",
    "Using the|for occasional jobs and it is fine.;Got the|as a backup, nothing special.;"
    "Bought the|on sale and it is okay.;Mixed results with the|so far.",
    "Using the|daily and it holds up well.;Bought the|last month and I am happy with it.;"
    "Good value on the|for the money.;Happy with the|despite minor flaws.",
    "Using the|every day and I love it.;Best|I have owned so far.;"
    "Bought the|as a gift and they loved it.;Very impressed with the|and the build quality.",
)
_GENERIC_FEATURES = (
    "Easy to set up and use", "Premium materials built to last", "Compact design saves space",
    "Easy to clean", "Great gift idea", "Tested for quality and safety",
    "Lightweight and easy to carry", "Satisfaction guaranteed",
)  # fmt: skip
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_PUBLISHERS = ("Harbor Lane Press", "Bluebird Books", "Northfield Publishing", "Quill House")

_ALNUM_UP = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_ALNUM = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_START_MS = 1_598_918_400_000  # 2020-09-01 UTC: reviews span three years
_END_MS = 1_693_526_400_000  # 2023-09-01 UTC: end of the 2023 crawl
_LAUNCH_MIN_MS = 1_388_534_400_000  # 2014-01-01 UTC: earliest "Date First Available"
_IN_PREF = 0.85  # share of a user's ratings in their preferred categories
_STARS_IN = np.cumsum([0.03, 0.03, 0.07, 0.25, 0.62])  # liked categories skew to 5 stars
_STARS_OUT = np.cumsum([0.14, 0.10, 0.17, 0.22, 0.37])
_CHUNK = 100_000  # review lines per write


def _split(s: str, sep: str = "|") -> list[str]:
    return [x.strip() for x in s.split(sep)]


def _flat(pools: list[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Flatten per-category pools into one list plus per-category offset and length arrays."""
    lens = np.array([len(p) for p in pools])
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return [x for p in pools for x in p], offs, lens


def _lower_noun(noun: str) -> str:
    # Keep acronyms and model-ish tokens (USB-C, OBD2, LED) as they are.
    words = noun.split()
    return " ".join(w if w.isupper() or any(ch.isdigit() for ch in w) else w.lower() for w in words)


_NOUNS, _NOUN_OFF, _NOUN_LEN = _flat(
    [[n for sub in c.subcats.split(";") for n in _split(sub.split(":")[1])] for c in _CATALOG]
)
_NOUN_SUB = [  # each noun's subcategory, aligned with _NOUNS
    s.split(":")[0].strip() for c in _CATALOG for s in c.subcats.split(";") for _ in s.split("|")
]
_NOUN_LOW = [_lower_noun(n) for n in _NOUNS]
_ADJS, _ADJ_OFF, _ADJ_LEN = _flat([_split(c.adjs) for c in _CATALOG])
_BRANDS, _BRAND_OFF, _BRAND_LEN = _flat([_split(c.brands) for c in _CATALOG])
_USES, _USE_OFF, _USE_LEN = _flat([_split(c.uses) for c in _CATALOG])
_SPECS, _SPEC_OFF, _SPEC_LEN = _flat([_split(c.specs) for c in _CATALOG])
_RT = [t for s in _REVIEW_TITLES for t in _split(s)]
_RO = [t for s in _REVIEW_OPEN for t in _split(s)]
_RB = [_split(b) for s in _REVIEW_BODY for b in _split(s, ";")]
_RB_PRE, _RB_POST = [b[0] for b in _RB], [b[1] for b in _RB]


def _pick(
    rng: np.random.Generator, cat: np.ndarray, offs: np.ndarray, lens: np.ndarray
) -> np.ndarray:
    """Uniform index into each row's category pool (flattened)."""
    return offs[cat] + (rng.random(cat.size) * lens[cat]).astype(np.int64)


def _codes(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> np.ndarray:
    """`n` random fixed-width ASCII codes as an (n, width) uint8 array."""
    return alphabet[rng.integers(0, alphabet.size, size=(n, width), dtype=np.uint8)]


def _to_str(codes: np.ndarray, prefix: bytes = b"") -> list[str]:
    """Rows of an (n, width) uint8 array as Python strings, with an optional fixed prefix."""
    if prefix:
        pre = np.broadcast_to(np.frombuffer(prefix, np.uint8), (codes.shape[0], len(prefix)))
        codes = np.hstack([pre, codes])
    return np.ascontiguousarray(codes).view(f"S{codes.shape[1]}").ravel().astype(str).tolist()


def _asins(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct ids shaped like "B0" + 8 uppercase alnum (parent ids first, then variants)."""
    codes = _codes(rng, n, 8, _ALNUM_UP)
    while True:  # 36**8 ids, so collisions are rare; redraw the few there are
        _, first = np.unique(codes.view("S8").ravel(), return_index=True)
        if first.size == n:
            return _to_str(codes, b"B0")
        dup = np.setdiff1d(np.arange(n), first)
        codes[dup] = _codes(rng, dup.size, 8, _ALNUM_UP)


def _sample_cdf(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.minimum(idx, cdf.size - 1)


def _user_counts(rng: np.random.Generator, users: int, ratings: int, cap: int) -> np.ndarray:
    """Ratings per user: one each, plus extras by a heavy-tailed activity weight, capped."""
    if ratings < users:
        counts = np.zeros(users, np.int64)
        counts[rng.choice(users, ratings, replace=False)] = 1
        return counts
    counts = np.ones(users, np.int64)
    weight = rng.pareto(1.6, users) + 0.02
    extra = ratings - users
    while extra > 0:  # terminates: validation guarantees users * cap >= ratings
        w = np.where(counts < cap, weight, 0.0)
        counts += np.bincount(_sample_cdf(rng, np.cumsum(w), extra), minlength=users)
        extra = int(np.maximum(counts - cap, 0).sum())
        np.minimum(counts, cap, out=counts)
    return counts


class _Writer:
    """Writes encoded chunks on a thread: zlib releases the GIL, so compression overlaps
    with formatting the next chunk on the second core."""

    def __init__(self, path: Path, gz: bool) -> None:
        self._raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        # mtime=0 keeps the .gz bytes identical across runs with the same seed.
        self._f: io.BufferedIOBase = (
            _gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=1, mtime=0)
            if gz
            else self._raw
        )
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._f.write(data)
                except BaseException as exc:  # re-raised in close()
                    self._error = exc

    def write(self, text: str) -> None:
        self._q.put(text.encode("ascii"))

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._f is not self._raw:
            self._f.close()
        self._raw.close()
        if self._error is not None:
            raise self._error


def _validate(users: int, items: int, ratings: int, products: int, n_cat: int) -> None:
    if users < 1 or items < 1 or ratings < 1:
        raise ValueError(
            f"users, items and ratings must be >= 1 (got users={users}, items={items}, "
            f"ratings={ratings})"
        )
    if products < items:
        raise ValueError(
            f"products ({products}) must be >= items ({items}): rated items are a subset of "
            "the catalog"
        )
    if ratings > users * items:
        raise ValueError(
            f"ratings ({ratings}) exceeds the {users * items} distinct (user, item) pairs"
        )
    if not 1 <= n_cat <= len(_CATALOG):
        raise ValueError(f"categories must be between 1 and {len(_CATALOG)} (got {n_cat})")


def generate_sample(
    outdir: Path,
    *,
    users: int = 2000,
    items: int = 500,
    ratings: int = 20000,
    products: int | None = None,
    seed: int = 42,
    gzip: bool = False,
    categories: int | None = None,
) -> SampleResult:
    """Write ``reviews.jsonl`` and ``meta.jsonl`` (``.gz`` when `gzip`) into `outdir`.

    `products` defaults to `items` + 4.4% (never-rated catalog entries, as in the real dumps);
    `categories` keeps the first k top-level categories (default all 16).
    """
    n_cat = len(_CATALOG) if categories is None else categories
    n_prod = items + round(items * 0.044) if products is None else products
    _validate(users, items, ratings, n_prod, n_cat)
    rng = np.random.default_rng(seed)

    # --- catalog: categories, popularity, ids, launch dates -----------------------------------
    cat_w = np.array([c.weight for c in _CATALOG[:n_cat]])
    cat_of = np.empty(n_prod, np.int64)  # rated items are products [0, items)
    for lo, n in ((0, items), (items, n_prod - items)):
        base = np.arange(n_cat) if n >= n_cat else np.zeros(0, np.int64)  # >= 1 per category
        rest = _sample_cdf(rng, np.cumsum(cat_w), n - base.size)
        cat_of[lo : lo + n] = rng.permutation(np.concatenate([base, rest]))
    item_cat = cat_of[:items]
    # Zipf-like popularity; the offset (10 at 90K items) keeps the top item near 0.5% of ratings.
    pop = (rng.permutation(items) + np.clip(items / 9000, 2.0, 10.0)) ** -0.85
    asin = _asins(rng, 3 * n_prod)  # [parents | 2 variants per product]
    span = _END_MS - 30 * 86_400_000 - _LAUNCH_MIN_MS  # launched at least a month before the end
    launch = _LAUNCH_MIN_MS + (span * rng.random(n_prod) ** 0.7).astype(np.int64)

    # Items sorted by category, with cumulative popularity, to sample "an item of category c".
    by_cat = np.argsort(item_cat, kind="stable")
    c_start = np.searchsorted(item_cat[by_cat], np.arange(n_cat))
    c_end = np.searchsorted(item_cat[by_cat], np.arange(n_cat), side="right")
    c_size = c_end - c_start
    cum = np.cumsum(pop[by_cat])
    c_mass = np.bincount(item_cat, weights=pop, minlength=n_cat)
    c_lo = np.where(c_start > 0, cum[np.maximum(c_start - 1, 0)], 0.0)

    def pick_popular(cats: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(cum, c_lo[cats] + rng.random(cats.size) * c_mass[cats], "right")
        return by_cat[np.clip(pos, c_start[cats], c_end[cats] - 1)]

    # --- users: activity and tastes ------------------------------------------------------------
    cap = min(items, max(-(-ratings // users) * 2, min(items // 8, 300)))
    counts = _user_counts(rng, users, ratings, cap)
    cat_cdf = np.cumsum(c_mass)  # taste follows category demand, so empty categories never win
    prim = _sample_cdf(rng, cat_cdf, users)
    sec = _sample_cdf(rng, cat_cdf, users)
    sec = np.where((rng.random(users) < 0.5) & (sec != prim), sec, -1)

    user = np.repeat(np.arange(users), counts)  # rows grouped by user until the final shuffle
    n_rows = user.size
    row_cat = np.where((sec[user] >= 0) & (rng.random(n_rows) < 0.3), sec[user], prim[user])
    out = rng.random(n_rows) >= _IN_PREF
    row_cat[out] = _sample_cdf(rng, cat_cdf, int(out.sum()))

    # Every item gets at least one rating (when there are enough rows in its category), so
    # `items` is honoured; the rest follow popularity.
    item = np.full(n_rows, -1, np.int64)
    rows_by_cat = np.argsort(row_cat, kind="stable")
    r_start = np.searchsorted(row_cat[rows_by_cat], np.arange(n_cat))
    r_end = np.searchsorted(row_cat[rows_by_cat], np.arange(n_cat), side="right")
    for c in range(n_cat):
        rows_c, items_c = rows_by_cat[r_start[c] : r_end[c]], by_cat[c_start[c] : c_end[c]]
        m = min(rows_c.size, items_c.size)
        item[rows_c[rng.choice(rows_c.size, m, replace=False)]] = rng.permutation(items_c)[:m]
    free = np.flatnonzero(item < 0)
    item[free] = pick_popular(row_cat[free])

    # Redraw repeated (user, item) pairs: by popularity, then uniformly in the category, then
    # anywhere; heavy users of small categories may exhaust them.
    for rnd in range(12):
        key = user * items + item
        srt = np.argsort(key, kind="stable")
        dup = srt[1:][key[srt[1:]] == key[srt[:-1]]]
        if dup.size == 0:
            break
        c = row_cat[dup]
        if rnd < 4:
            item[dup] = pick_popular(c)
        elif rnd < 8:
            item[dup] = by_cat[c_start[c] + (rng.random(dup.size) * c_size[c]).astype(np.int64)]
        else:
            item[dup] = rng.integers(0, items, dup.size)
    else:  # dense corner cases (ratings close to users * items): fill from what is left
        key = user * items + item
        srt = np.argsort(key, kind="stable")
        dup = srt[1:][key[srt[1:]] == key[srt[:-1]]]
        offs = np.concatenate([[0], np.cumsum(counts)])
        for r in dup.tolist():
            u = int(user[r])
            have = item[offs[u] : offs[u + 1]]
            if np.count_nonzero(have == item[r]) > 1:
                item[r] = rng.choice(np.setdiff1d(np.arange(items), have))

    # ~0.5% deliberate repeat reviews: a user reviews the item of their previous row again.
    n_per_item = np.bincount(item, minlength=items)
    cand = np.flatnonzero((user[1:] == user[:-1]) & (n_per_item[item[1:]] >= 2)) + 1
    rep = rng.choice(cand, min(round(n_rows * 0.005), cand.size), replace=False)
    rep = rep[~np.isin(rep - 1, rep)]  # no chains, so each repeat has one original
    replaced = item[rep]
    item[rep] = item[rep - 1]
    lost = np.bincount(item, minlength=items)[replaced] == 0  # an item's last rows all moved
    item[rep[lost]] = replaced[lost]
    rep = rep[~lost]

    # --- per-review values ---------------------------------------------------------------------
    ic = item_cat[item]
    liked = (ic == prim[user]) | (ic == sec[user])
    u01 = rng.random(n_rows)
    star = np.where(
        liked, np.searchsorted(_STARS_IN, u01, "right"), np.searchsorted(_STARS_OUT, u01, "right")
    )
    star = np.minimum(star, 4) + 1
    lemon = (rng.random(items) < 0.12)[item] & (rng.random(n_rows) < 0.6)  # poor items
    star[lemon] = np.maximum(star[lemon] - rng.integers(1, 3, int(lemon.sum())), 1)

    earliest = np.maximum(_START_MS, launch[item])  # no review before the product exists
    ts = _END_MS - ((_END_MS - earliest) * rng.random(n_rows) ** 1.4).astype(np.int64)
    orig = rep - 1  # move the original earlier, the repeat strictly after it
    ts[orig] = earliest[orig] + (ts[orig] - earliest[orig]) // 2
    ts[rep] = (
        ts[orig] + 1 + ((_END_MS - ts[orig]) * rng.uniform(0.05, 1.0, rep.size)).astype(np.int64)
    )
    helpful = np.where(rng.random(n_rows) < 0.72, 0, np.minimum(rng.zipf(1.9, n_rows), 5000))
    verified = (rng.random(n_rows) < 0.9).astype(np.int64)
    variant = rng.random(n_rows) < 0.3
    asin_slot = 3 * item + variant * rng.integers(1, 3, n_rows)  # 0: the parent, 1-2: variants
    title_idx = (star - 1) * 6 + rng.integers(0, 6, n_rows)
    text_idx = (star - 1) * 16 + rng.integers(0, 16, n_rows)  # (opening, body) pair per star
    user_ids = _to_str(_codes(rng, users, 27, _ALNUM_UP), b"A")  # 36**27: collisions ~never

    avg = np.bincount(item, weights=star, minlength=n_prod)
    n_rated = np.bincount(item, minlength=n_prod)
    n_users = int(np.count_nonzero(counts))
    n_items = int(np.count_nonzero(n_rated))

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ext = ".jsonl.gz" if gzip else ".jsonl"
    meta_path, reviews_path = outdir / f"meta{ext}", outdir / f"reviews{ext}"
    noun_of = _pick(rng, cat_of, _NOUN_OFF, _NOUN_LEN)
    _write_meta(rng, meta_path, gzip, cat_of, noun_of, asin, launch, avg, n_rated)

    perm = rng.permutation(n_rows)  # real dumps are not grouped by user
    cols = [a[perm] for a in (title_idx, text_idx, item, asin_slot, user, ts, helpful, verified)]
    # Pre-joined fragments keep the per-line work to a handful of list lookups.
    head = [f'{{"rating": {t // 6 + 1}.0, "title": "{_RT[t]}", "text": "' for t in range(30)]
    text_a = [
        f"{_RO[t // 16 * 4 + t % 16 // 4]} {_RB_PRE[t // 16 * 4 + t % 4]} " for t in range(80)
    ]
    text_b = [f' {_RB_POST[t // 16 * 4 + t % 4]}", "images": [], "asin": "' for t in range(80)]
    pair = [  # asin_slot -> asin + parent_asin
        f'{asin[i if k == 0 else n_prod + 2 * i + k - 1]}", "parent_asin": "{asin[i]}'
        for i in range(items)
        for k in range(3)
    ]
    noun_s = [_NOUN_LOW[n] for n in noun_of.tolist()]
    tail = ["false}\n", "true}\n"]
    w = _Writer(reviews_path, gzip)
    try:
        for s in range(0, n_rows, _CHUNK):
            chunk = [c[s : s + _CHUNK].tolist() for c in cols]
            w.write(
                "".join(
                    [
                        f'{head[t]}{text_a[x]}{noun_s[i]}{text_b[x]}{pair[a]}", "user_id": '
                        f'"{user_ids[u]}", "timestamp": {t_ms}, "helpful_vote": {h}, '
                        f'"verified_purchase": {tail[v]}'
                        for t, x, i, a, u, t_ms, h, v in zip(*chunk, strict=True)
                    ]
                )
            )
    finally:
        w.close()
    return SampleResult(reviews_path, meta_path, n_users, n_items, n_rows, n_prod)


def _article(word: str) -> str:
    return "An" if word[0] in "AEIOUaeiou" else "A"


def _write_meta(
    rng: np.random.Generator,
    path: Path,
    gz: bool,
    cat_of: np.ndarray,
    noun_of: np.ndarray,
    asin: list[str],
    launch: np.ndarray,
    star_sum: np.ndarray,
    n_rated: np.ndarray,
) -> None:
    """One meta line per product, in shuffled order; all strings come from the safe vocabulary."""
    n = cat_of.size
    brand = _pick(rng, cat_of, _BRAND_OFF, _BRAND_LEN)
    adj = _pick(rng, cat_of, _ADJ_OFF, _ADJ_LEN)
    shift = 1 + (rng.random(n) * (_ADJ_LEN[cat_of] - 1)).astype(np.int64)  # a different adj
    adj2 = _ADJ_OFF[cat_of] + (adj - _ADJ_OFF[cat_of] + shift) % _ADJ_LEN[cat_of]
    use = _pick(rng, cat_of, _USE_OFF, _USE_LEN)
    spec = _pick(rng, cat_of, _SPEC_OFF, _SPEC_LEN)
    has_use, has_adj2, has_spec = (rng.random((3, n)) < [[0.6], [0.45], [0.5]]).tolist()
    # Model numbers like "X200" / "KT-450": exact tokens for keyword search.
    letters = _to_str(_codes(rng, n, 2, _ALNUM_UP[10:]))
    n_letters = rng.integers(1, 3, n).tolist()
    hyphen = (rng.random(n) < 0.5).tolist()
    number = (rng.integers(1, 100, n) * 10 ** rng.integers(0, 3, n)).tolist()
    model = [
        "" if r >= 0.65 else f"{lt[:k]}{'-' if h and k == 2 else ''}{num}"
        for r, lt, k, h, num in zip(
            rng.random(n).tolist(), letters, n_letters, hyphen, number, strict=True
        )
    ]
    model_first = (rng.random(n) < 0.35).tolist()
    med = np.array([c.price for c in _CATALOG])[cat_of]
    cents = rng.choice(np.array([0.99, 0.99, 0.95, 0.49, 0.0]), n)
    price = np.floor(med * rng.lognormal(0.0, 0.6, n)) + cents
    price_s = np.where(rng.random(n) < 0.15, "null", np.char.mod("%.2f", np.maximum(price, 0.99)))
    # Image ids like "61EzXQ3sXSL": a digit, 9 mixed-case alnum, "L".
    img_first, img_mid = _codes(rng, 2 * n, 1, _ALNUM[4:8]), _codes(rng, 2 * n, 9, _ALNUM)
    img = _to_str(np.hstack([img_first, img_mid, np.full((2 * n, 1), ord("L"), np.uint8)]))
    day = launch.astype("datetime64[ms]").astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    year = (month.astype(np.int64) // 12 + 1970).tolist()
    mon = (month.astype(np.int64) % 12).tolist()
    dom = ((day - month.astype("datetime64[D]")).astype(np.int64) + 1).tolist()
    # Rated items: the real mean of their ratings; never-rated ones: a plausible outside score.
    rated = n_rated > 0
    avg = np.where(rated, star_sum / np.maximum(n_rated, 1), np.clip(rng.normal(4.2, 0.5, n), 1, 5))
    avg_s = np.char.mod("%.1f", np.round(avg, 1)).tolist()
    n_ratings = np.where(rated, n_rated, rng.integers(1, 25, n)).tolist()
    gen = rng.integers(0, len(_GENERIC_FEATURES), (2, n))
    gen[1] = (gen[0] + 1 + rng.integers(0, len(_GENERIC_FEATURES) - 1, n)) % len(_GENERIC_FEATURES)
    gen1, gen2 = gen.tolist()
    warranty = rng.choice(np.array([6, 12, 24]), n).tolist()
    pages = rng.integers(96, 720, n).tolist()
    series = (rng.integers(1, 6, n) * (rng.random(n) < 0.3)).tolist()
    publisher = rng.integers(0, len(_PUBLISHERS), n).tolist()
    cols = [x.tolist() for x in (cat_of, noun_of, brand, adj, adj2, use, spec, price_s)]
    g_feat, img_url = _GENERIC_FEATURES, "https://m.media-amazon.com/images/I/"

    def js_list(xs: list[str]) -> str:
        return '["' + '", "'.join(xs) + '"]'

    lines = []
    for p in rng.permutation(n).tolist():
        c, nn, b, a, a2, u, sp, pr = (col[p] for col in cols)
        cat, noun, br, adjs, spec_s = _CATALOG[c].name, _NOUNS[nn], _BRANDS[b], _ADJS[a], _SPECS[sp]
        date = f"{_MONTHS[mon[p]]} {dom[p]}, {year[p]}"
        if c == _BOOKS:
            head = f"The {adjs} {spec_s}"
            title = f"{head}: {_article(noun)} {noun}"
            if series[p]:
                title += f" ({spec_s} Series, Book {series[p]})"
            feats = [f"{_USES[u]} edition", f"{pages[p]} pages"]
            desc = [f"From {br} comes {head}, {_article(noun).lower()} {_NOUN_LOW[nn]} to savor."]
            store = f"{br} (Author)"
            details = (
                f'{{"Publisher": "{_PUBLISHERS[publisher[p]]}", "Publication date": "{date}", '
                f'"Language": "English", "Print length": "{pages[p]} pages"}}'
            )
        else:
            m, use_s = model[p], (_USES[u] if has_use[p] else "for everyday use")
            title = f"{br} {m} {adjs} {noun}" if m and model_first[p] else f"{br} {adjs} {noun}"
            if has_use[p]:
                title += f" {use_s}"
            if has_adj2[p]:
                title += f", {_ADJS[a2]}"
            if has_spec[p]:
                title += f", {spec_s}"
            if m and not model_first[p]:
                title += f" - Model {m}"
            feats = [
                f"{adjs.upper()}: {_NOUN_LOW[nn]} {use_s}",
                g_feat[gen1[p]],
                g_feat[gen2[p]],
                f"{warranty[p]}-month {br} warranty",
            ]
            if has_spec[p]:
                feats.insert(1, f"Key spec: {spec_s}")
            desc = [
                f"Meet the {br} {noun}: {adjs}, {_ADJS[a2]} and made {use_s}.",
                f"{g_feat[gen2[p]]}.",
            ]
            store = br
            details = f'{{"Brand": "{br}", "Date First Available": "{date}"'
            details += f', "Model Number": "{m}"}}' if m else "}"
        lines.append(
            f'{{"main_category": "{cat}", "title": "{title}", "average_rating": {avg_s[p]}, '
            f'"rating_number": {n_ratings[p]}, "features": {js_list(feats)}, '
            f'"description": {js_list(desc)}, "price": {pr}, "images": [{{"thumb": '
            f'"{img_url}{img[2 * p]}._SS40_.jpg", "large": "{img_url}{img[2 * p]}.jpg", '
            f'"variant": "MAIN", "hi_res": "{img_url}{img[2 * p + 1]}._SL1500_.jpg"}}], '
            f'"videos": [], "store": "{store}", "categories": ["{cat}", "{_NOUN_SUB[nn]}"], '
            f'"details": {details}, "parent_asin": "{asin[p]}", "bought_together": null}}\n'
        )
    w = _Writer(path, gz)
    try:
        for s in range(0, n, _CHUNK):
            w.write("".join(lines[s : s + _CHUNK]))
    finally:
        w.close()
