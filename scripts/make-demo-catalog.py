#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds the web demo's product catalog from the UCI "Online Retail" transactions.

Reads the gzipped CSV of transactions, keeps the real products (no postage, fees, vouchers,
cancellations or zero-priced adjustments), and writes web-demo/catalog/demo-catalog.jsonl:
one {"id", "name", "category", "tags", "price", "popularity"} object per line, sorted by id. The dataset has
no categories or tags; both are derived here by keyword rules on the description, so the
output is deterministic for a given input. Python 3.11 standard library only.

Usage: scripts/make-demo-catalog.py [path/to/online_retail.csv.gz] [--out FILE]
"""

import argparse
import collections
import csv
import decimal
import gzip
import json
import re
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / ".." / "shared" / "data" / "online-retail" / "online_retail.csv.gz"
DEFAULT_OUTPUT = REPO_ROOT / "web-demo" / "catalog" / "demo-catalog.jsonl"

# Product stock codes are five digits with an optional variant suffix ("85123A"). Everything
# else is bookkeeping (POST, DOT, M, C2, BANK CHARGES, AMAZONFEE, gift_0001_*, S, B) or
# one-off "DCGS" listings from a marketplace, most of which have no usable description.
PRODUCT_CODE = re.compile(r"^\d{5}[A-Za-z]{0,2}$")

# Descriptions that name a bookkeeping line rather than a product, even under a product code.
NON_PRODUCT_DESCRIPTION = re.compile(
    r"\b(postage|next day carriage|^carriage$|packing charge|manual|bank charges|amazon|"
    r"ebay|voucher|samples?|adjust|discount|damaged?|missing|lost|found|wrongly|mix ?up|"
    r"high resolution image|counted|dotcom|returned|faulty|test)\b",
    re.IGNORECASE,
)

# Category rules: the first rule whose pattern matches the upper-cased description wins, so
# the order is the point. Seasonal themes come first (a "CHRISTMAS CANDLE" belongs with
# Christmas), then phrases that name a product unambiguously ("HOT WATER BOTTLE" is a
# textile although "BOTTLE" alone is kitchenware, "PLAYING CARDS" are a game, "CARD WALLET"
# an accessory), then the product families, and last the broad decorative words ("HEART",
# "HANGING", "STAR") that mostly describe how a thing looks rather than what it is. A
# category may appear more than once: an early rule with its strong phrases and a late one
# with its weak words. Each alternative is matched as whole words.
CATEGORY_RULES = [
    # Seasonal themes win over the product type.
    ("christmas", "CHRISTMAS XMAS ADVENT SANTAS? REINDEER SNOWFLAKES? SNOWMEN SNOWMAN NATIVITY "
                  "BAUBLES? TINSEL NOEL ROBIN STOCKINGS? MISTLETOE PANETTONE PANNETONE JINGLE "
                  "SLEIGH YULETIDE POINSETTIA HOLLY SNOW ANGELS?"),
    ("easter", "EASTER CHICKS? BUNNY BUNNIES HENS? HENRIETTA"),
    # Phrases that name the product whatever else the description says.
    ("clocks", "CLOCKS? ALARM TIMER"),
    ("signs", "SIGNS? PLAQUES? NUMBER_TILE DOOR_HANGER DOORSIGN STOPMETAL"),
    ("storage", "MONEY_BOX MONEY_BANK PIGGY_BANK TRINKET_\\w+ JEWELLERY_BOX JEWELLERY_STAND "
                "JEWEL_BOX KEEPSAKE_BOX"),
    ("home-decor", "WALL_ART PHOTO_FRAMES? PICTURE_FRAMES?"),
    ("bathroom", "TISSUES TISSUE_BOX FIRST_AID PLASTERS WASHBAG WASH_BAG COSMETICS? LIP_GLOSS "
                 "SHOWER_CAP BATH_SALTS TOOTHBRUSH BALM"),
    ("kitchen", "TEA_TOWELS? OVEN_GLOVE WASHING_UP TEA_BAG FOOD_COVER CAKE_TINS? HERB_TINS "
                "BISCUIT_TIN RECIPE LUNCH_BOX EGG_CUPS? CAKE_STAND CAKESTAND MUG_WARMER "
                "KITCHEN_THERMOMETER CHOPPING_BOARD STORAGE_JAR"),
    ("cards-wrap", "GREETING_CARDS? BIRTHDAY_CARDS? BLANK_CARDS? CARD_KIT"),
    ("bags", "JUMBO_BAGS? LUNCH_BAGS? CHARLOTTE_BAGS? TOTE_BAGS? SHOPPING_BAGS? SHOPPER"),
    ("crafts", "SEWING KNITTING FELTCRAFT CRAFT STENCIL PIN_CUSHION IRON_ON PATCHES "
               "PAPER_CHAIN MAKE_YOUR_OWN KIT TAPE_MEASURE MEASURING_TAPE BUTTONS? NEEDLES? "
               "PAINT_SET PAINT_YOUR_OWN MODELLING_CLAY"),
    ("textiles", "HOT_WATER_BOTTLES? CUSHIONS? CUSHION_COVER SQUARECUSHION C/COVER FILLER_PAD "
                 "TEA_COSY THROW BLANKET QUILT CURTAIN TABLECLOTH DOORSTOP DOORMATS? RUG "
                 "HOTTIE WALLHANGING"),
    # Product families. Toys come before cards (PLAYING CARDS), cards and party before
    # accessories (PARTY SUNGLASSES, PARASOL STRAWS), accessories before jewellery and bags
    # (KEY RING, BAG CHARM, RING PURSE).
    ("toys-games", "PLAYING_CARDS SNAP_CARDS CARD_GAME TOYS? GAMES? PUZZLES? JIGSAWS? DOMINOES "
                   "SKIPPING SPINNING_TOPS? DOLLS? MARBLES YO-?YO KITES? LUDO LADDERS BINGO "
                   "CHESS FRISBEE BUBBLES SKITTLES HELICOPTER HARMONICA CATCH_CUP "
                   "PICK_UP_STICKS DRAWING_SLATE TEDDY BLOCKS CROQUET ROUNDERS INFLATABLE "
                   "WINDMILL PUPPET ROCKING_HORSE GLIDERS? FARM_ANIMAL CREEPY_CRAWL\\w* "
                   "SNAKE_SET FLYING_DISC NAUGHTS SANDCASTLE HEADS_AND_TAILS GLOW_IN_DARK "
                   "CHALK"),
    ("cards-wrap", "CARDS?(?!_?HOLDER|_WALLET) WRAPS? WRAPPING GIFT_TAGS? TAGS TISSUE "
                   "GIFT_BAGS? (?<!\\bIN_)(?<!\\bW_)GIFT_BOX(?:ES)? RIBBONS? REEL ENVELOPES? "
                   "GIFT_TAPE INVITES"),
    ("party", "PARTY BIRTHDAY CELEBRATION CAKE_CASES PETIT_FOUR_CASES BUNTING BALLOONS "
              "BALLOON_\\w+ WATER_BOMB CUPCAKE NAPKINS? PAPER_PLATES? PAPER_CUPS? STRAWS? "
              "CONFETTI PINATA CRACKERS? FANCY_DRESS MASKS? PAPER_DOILIES DOILIES LEIS "
              "GRASS_SKIRT SOMBRERO TIARAS CAKE_FRILL PLACE_SETTINGS? HONEYCOMB LOLLY_MAKERS"),
    ("accessories", "PURSES? WALLETS? PASSPORT VIPPASSPORT LUGGAGE_TAGS? UMBRELLA(?!_STAND) "
                    "PARASOL HAND_WARMER POCKET_WARMER COMPACT_MIRROR POCKET_MIRROR SUNGLASSES "
                    "GLASSES_CASE RAIN_HAT RAIN_MAC SLIPPER BADGES TATTOOS KEY_?RINGS? "
                    "KEYRINGS? KEY_FOB KEY_CHAIN KEY-CHAINS BAG_CHARMS? PHONE_CHARMS? "
                    "PHONE_CHAR SCARF FANS? EAR_MUFF HEADPHONES PONCHO BICYCLE_CLIPS"),
    ("jewellery", "NECKLACES? NECKL\\w* BRACELETS? BRACLET EARRINGS? BROOCH PENDANT CHOKER "
                  "LARIAT BANGLES? TIARA HAIR_\\w+ HAIRCLIPS? HAIRSLIDE HAIRBANDS? "
                  "JEWELLERY_SET SLIDES? (?<!\\bLIGHT_)CHAIN "
                  "(?<!\\bKEY_)(?<!\\bLIGHT_)(?<!\\bNAPKIN_)RINGS?(?!_LAMPSHADE)"),
    ("bags", "(?<!\\bTEA_)(?<!\\bIN_)BAGS?(?!_OF) TOTE HANDBAG HAND_BAG BACKPACK RUCKSACK "
             "SATCHEL"),
    ("bathroom", "BATHROOM SOAPS? SOAP_DISH TOILET BATH SHOWER FLANNEL TOWELS?"),
    ("candles-lights", "CANDLES? CANDLEHOLDERS? CANDLESTICK CANDLE_STICK CANDLEPOT CANDELABRA "
                       "CHOCOLATECANDLE T-LIGHTS? TEA_?LIGHTS? TEALIGHTS? LANTERNS? "
                       "NIGHT_?LIGHTS? NIGHTLIGHT LAMPS? LAMPSHADES? LAMP_SHADE LED WICK "
                       "INCENSE OIL_BURNER FRAGRANCE VOTIVE CHANDELIER TORCH BULB LIGHTBULB "
                       "MATCHES 20LIGHT LIGHTS?(?!_(?:PINK|BLUE|GREEN|TOPAZ))"),
    ("garden", "WATERING_CAN PLANTERS? PLANT_POTS? FLOWER_?POTS? PLANT_HOLDER PLANT_CAGE "
               "PLANT_LADDER BIRD_?FEEDER BIRD_?HOUSE BIRD_TABLE DOVECOTE TROWEL SECATEURS "
               "SPADE RAKE WHEELBARROW HERB_MARKER GARDEN_MARKER GNOMES? WIND_?CHIMES? "
               "THERMOMETER KNEELING_PAD GARDEN_FORK GARDEN_SET GARDEN_TOOLS GROW SOW TWINE "
               "CLOCHE SEEDS? GREENHOUSE POTTING_SHED"),
    ("furniture", "CABINETS? CUPBOARD SIDEBOARD CHEST_OF_DRAWERS SHELF_UNIT SHELVING_UNIT "
                  "STOOLS? CHAIRS? POUFFE HAMMOCK DESK BENCH LOVE_SEAT PARTITION "
                  "(?:STEEL|ROUND|SIDE|COFFEE|FOLDING|BEDSIDE)_TABLE TABLE_RECT"),
    # An audience rather than a product type, so after the families a child's item is
    # usually filed under (bags, toys, garden tools) but before tableware and stationery.
    ("children", "CHILDRENS? CHILDREN'S CHILD'S CHILDS KIDS? BABY NURSERY SPACEBOY DOLLY_GIRL "
                 "CIRCUS_PARADE DINOSAURS? BIB SCHOOL PLAYHOUSE CRAYONS COLOURING "
                 "HEIGHT_CHART BOYS GIRLS"),
    ("stationery", "NOTEBOOKS? NOTE_BOOKS NOTEPAD PENS? PENCILS? ERASERS? RUBBERS? RULERS? "
                   "STICKERS? JOURNAL DIARY MEMO MEMOBOARD MEMO_BOARD CALENDAR WRITING_SET "
                   "SKETCHBOOK NOTELETS ADDRESS_BOOK BOOKMARK BOOK_MARK STAMP_SET STAMPS "
                   "STATIONERY OFFICE CLIPBOARD PENCIL_CASE SHARPENERS? TAPES? MAGNETS? "
                   "MAGNETIC PHOTO_ALBUM ALBUM SCRAP_?BOOK POSTCARDS? EXERCISE_BOOKS? "
                   "POCKET_BOOK PLANNER ORGANISER SCISSORS? SCISSOR HIGHLIGHTER CALCULATOR "
                   "BOOK_BOX GLOBE HOLE_PUNCH"),
    ("kitchen", "KITCHEN MUGS? CUPS? SAUCERS? PLATES? BOWLS? DISH DISHES TEAPOTS? TEA COFFEE "
                "CAKES? BAKING CUTLERY SPOONS? TEASPOONS FORKS? KNIFE KNIVES EGG_\\w+ LUNCH JAM "
                "JARS? BOTTLES? APRON OVEN CHOPPING BREAD BISCUITS? COOKIE CUTTERS? POPCORN "
                "TRAYS? JUGS? TUMBLERS? GOBLETS? CHALICE COASTERS? PLACEMATS? MILK SUGAR "
                "PANTRY SNACK CHOCOLATE FOOD SWEETIES PAN FRYING MEASURING SCALES COLANDER "
                "SIEVE WHISK ROLLING_PIN TEATIME TEA_TIME BREAKFAST DINNER DINER PICNIC "
                "TIFFIN BEAKERS? CONTAINERS? CHOPSTICKS SALT PEPPER GRINDER TOAST TOASTRACK "
                "WINE CHAMPAGNE CAFETIERE STRAINER MOULDS? ICE_CREAM LOLLY CHEESE BUTTER "
                "BEURRE DRINKS? FLASK NAPKIN TEACUPS? DOUGHNUTS? SPICE COCKTAIL BEER HONEY "
                "TRIFLE PUDDING LADLE UTENSILS? GRATER CHARGER HAMPER CADDY CANISTER "
                "CANNISTER BREADBIN SUNDAE LID MILKSHAKE APERITIF D\\.O\\.F PLATTER FRUITBOWL "
                "SQUEEZER COOKING"),
    ("storage", "STORAGE BOXES BOX BASKETS? TINS? DRAWERS? CRATES? TRUNK CHESTS? RACK SHELF "
                "SHELVES SHELVING HOOKS? HANGERS? COATHANGER TIDY BINS? PEGS? TRINKET POTS? "
                "CASKET KNOBS? DRAWERKNOB SUITCASE KEEPSAKE CUBES UNIT"),
    # Broad words last: they say what a thing looks like or where it goes.
    ("garden", "GARDEN GARDENERS PLANTS? FLOWERPOT BUCKET OUTDOOR BEACH SHED TOADSTOOLS? "
               "ARTIFICIAL_FLOWER"),
    ("home-decor", "FRAMES? PHOTOFRAME PHOTO PICTURE MIRRORS? MIRRORED DECORATIONS? DECORATIVE "
                   "HANGING HEARTS? VASES? ORNAMENTS? ART CANVAS CHALKBOARD BLACKBOARD WREATH "
                   "GARLAND BELLS? MOBILE WALL DOOR DOORBELL SCULPTURE FIGURINES? STATUE "
                   "BIRDS? BUTTERFL(?:Y|IES) FEATHERS? FLOWERS? ROSES? BOUQUET STAND DISPLAY "
                   "SCREEN HOME LOVE STARS? LETTERS BLOCK_WORD CARD_?HOLDER CARDHOLDER "
                   "PHOTO_CLIP CHERUB DOVE OWLS? RABBITS? CATS? DOGS? HORSE SKULLS? CROWN "
                   "WICKER FILIGREE PORCELAIN CERAMIC PAPERWEIGHT P'WEIGHT MUSHROOM SHELLS? "
                   "FLYING_DUCKS BUDDHA PENNANT FLAGS? ROSETTE DAISY PEARS CHIME"),
    ("textiles", "FABRIC FELT KNITTED CROCHET LACE COTTON LINEN PATCHWORK EMBROIDERED QUILTED "
                 "MAT"),
]


def compile_rule(words):
    """One regex from a rule's space-separated alternatives ("_" stands for a space)."""
    alternatives = (w.replace("_", " ") for w in words.split())
    return re.compile(r"(?<![\w'])(?:" + "|".join(alternatives) + r")(?![\w'])")


COMPILED_RULES = [(slug, compile_rule(words)) for slug, words in CATEGORY_RULES]

# Words that carry no meaning as a tag. Sizes are dropped too: "small" and "large" tell a
# recommender nothing about what the product is.
STOPWORDS = set(
    """a an and the of in on with for to from by at or as is it its no not your my our his her
    set sets pack packs piece pieces pc pcs assorted asstd asst design designs style type new
    round square oval single double triple size sizes cm mm x s m l xl xxl w d h g kg ml ltr
    lt inch inches
    one two three four five six seven eight nine ten twelve dozen pair shape shaped part
    colour colours col des asst ass hldr sml lge med wht multi assorted own
    blk rnd squ str nat dec dia bea com cmx
    box boxes holder""".split()
)

SIZE_WORDS = {"small", "large", "medium", "mini", "big", "giant", "jumbo", "tiny", "tall",
              "short", "long", "wide"}

# Colour words are kept as tags (and are what a shopper filters by), so they are never
# treated as noise even when short.
COLOURS = {
    "red", "pink", "blue", "white", "black", "green", "ivory", "cream", "silver", "gold",
    "purple", "yellow", "orange", "brown", "grey", "gray", "turquoise", "amber", "amethyst",
    "lilac", "fuschia", "fuchsia", "copper", "natural", "pastel", "multicolour", "rose",
    "aqua", "teal", "navy", "lavender",
}

# Spellings in the descriptions that would make odd tags; the right-hand side is used.
TAG_SPELLING = {
    "t-light": "tealight", "t-lights": "tealight", "tlight": "tealight",
    "tealights": "tealight", "childrens": "children", "necklac": "necklace",
    "children's": "children", "childs": "children", "child's": "children",
    "neckl": "necklace", "b'fly": "butterfly", "ant": "antique", "xmas": "christmas",
    "pannetone": "panettone", "candleholder": "candle", "braclet": "bracelet",
}

# Words kept upper-case in names.
ACRONYMS = {"LED", "USB", "UK", "USA", "DVD", "CD", "TV", "PHP", "ABC", "DIY", "II", "III",
            "IV", "XL", "NYC"}

# Short words kept lower-case inside a name ("Set of 3", "Lunch Bag in Pink").
NAME_LOWER = {"of", "and", "in", "on", "with", "the", "for", "a", "an", "to", "or", "at"}

MIN_ITEMS_WARN = 3000
MAX_ITEMS_WARN = 4000
MAX_OUTPUT_BYTES = 600 * 1024
CENT = decimal.Decimal("0.01")


def read_transactions(path):
    """Groups the usable sale lines by stock code.

    Returns {stock_code: (Counter of descriptions, [unit prices as Decimal], set of invoice
    numbers)}; the number of distinct invoices is the item's popularity prior. Cancellations
    (invoice numbers starting with "C"), non-product codes, zero or negative prices and
    empty descriptions are left out here, so the "most common description" and the median
    price below see only real sales.
    """
    products = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["InvoiceNo"].startswith("C"):
                continue
            code = row["StockCode"].strip()
            if not PRODUCT_CODE.match(code):
                continue
            try:
                price = decimal.Decimal(row["UnitPrice"])
            except decimal.InvalidOperation:
                continue
            if price <= 0:
                continue
            description = " ".join(row["Description"].split())
            if not description:
                continue
            descriptions, prices, invoices = products.setdefault(
                code.upper(), (collections.Counter(), [], set()))
            descriptions[description] += 1
            prices.append(price)
            invoices.add(row["InvoiceNo"])
    return products


def is_product_description(description):
    """Rejects descriptions that are bookkeeping notes or not a product name at all.

    The product names are upper-case; the few lower-case or mixed-case ones are either staff
    notes ("Manual", "Next Day Carriage") or rare marketplace one-offs, and are dropped.
    """
    letters = [c for c in description if c.isalpha()]
    if len(letters) < 3:
        return False
    if sum(c.islower() for c in letters) > len(letters) // 3:
        return False
    return not NON_PRODUCT_DESCRIPTION.search(description)


def most_common_description(descriptions):
    """The most frequent description; ties go to the alphabetically first, for determinism."""
    return min(descriptions.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def median_price(prices):
    """Median unit price over sale lines, rounded half-up to whole pence."""
    return decimal.Decimal(statistics.median(prices)).quantize(CENT, decimal.ROUND_HALF_UP)


def title_word(word):
    """Title-cases one word of a description, keeping acronyms and units readable."""
    if word.upper() in ACRONYMS:
        return word.upper()
    if any(c.isdigit() for c in word):
        # Counts and sizes: letters right after a digit are units ("125G" -> "125g",
        # "30CMX30CM" -> "30cmx30cm", "50'S" -> "50's"); other letters start a word ("A4").
        def letters(m):
            after_digit = m.start() > 0 and word[m.start() - 1] in "0123456789'"
            return m.group().lower() if after_digit else m.group().capitalize()
        return re.sub(r"[A-Za-z]+", letters, word)
    out = []
    start = True
    for c in word.lower():
        # Upper-case a letter that starts the word or follows a separator ("T-Light",
        # "Tea/Coffee", "(Pointed"); an apostrophe does not start a word ("Children's").
        out.append(c.upper() if start else c)
        start = not c.isalnum() and c != "'"
    return "".join(out)


def nice_name(description):
    """Turns "WHITE HANGING HEART T-LIGHT HOLDER" into "White Hanging Heart T-Light Holder".

    Also spells out the catalogue's abbreviations for counts ("S/4" and "SET/4" become
    "Set of 4", "PACK/12" becomes "Pack of 12", a lone "W" becomes "with") and spaces
    quoted words evenly.
    """
    text = description.strip().strip("*").strip()
    text = re.sub(r"\b(?:S|SET)/(\d+)\b", r"SET OF \1", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(PACK|BOX)/(\d+)\b", r"\1 OF \2", text, flags=re.IGNORECASE)
    text = re.sub(r'\s*"([^"]+)"\s*', r' "\1" ', text)  # only paired quotes; 7" stays
    text = re.sub(r"\bW/?(?= )", "WITH", text)
    text = re.sub(r",(?=\S)", ", ", text).rstrip(" ,.")
    words = [title_word(w) for w in text.split()]
    for i in range(1, len(words)):
        if words[i].lower() in NAME_LOWER:
            words[i] = words[i].lower()
    return " ".join(words)


def categorize(description):
    """The slug of the first category rule that matches, or "other"."""
    text = description.upper()
    for slug, pattern in COMPILED_RULES:
        if pattern.search(text):
            return slug
    return "other"


def make_tags(description, category):
    """3-8 lower-case tag words from the description, in order of appearance.

    Drops stopwords, sizes, numbers and single letters; keeps colours. A description too
    short to give three tags is filled up with the category's own words ("lights" for a
    candle holder, unless a tag already says nearly the same), then its size words ("jumbo"),
    then "gift".
    """
    tags, sizes = [], []
    for raw in re.findall(r"[A-Za-z][A-Za-z'\-]*", description.lower()):
        word = TAG_SPELLING.get(raw.strip("'-"), raw.strip("'-"))
        word = word.replace("'s", "").replace("'", "")
        if not word or word in tags:
            continue
        if word in SIZE_WORDS:
            sizes.append(word)
        elif word in COLOURS or (len(word) >= 3 and word not in STOPWORDS):
            tags.append(word)
    tags = tags[:8]
    fillers = [w for w in category.split("-") if w != "other"] + sizes + ["gift", "homeware"]
    for filler in fillers:
        if len(tags) >= 3:
            break
        if not any(filler[:4] == tag[:4] for tag in tags):
            tags.append(filler)
    return tags


def build_catalog(products):
    """The catalog as a list of item dicts, sorted by id."""
    catalog = []
    for code in sorted(products):
        descriptions, prices, invoices = products[code]
        description = most_common_description(descriptions)
        if not is_product_description(description):
            continue
        category = categorize(description)
        catalog.append({
            "id": code,
            "name": nice_name(description),
            "category": category,
            "tags": make_tags(description, category),
            "price": median_price(prices),
            "popularity": len(invoices),
        })
    return catalog


# Display names of the categories: the words the server's reasons use ("Popular in Candles &
# lights", not the slug). The catalog names each category once, on its first item.
CATEGORY_NAMES = {
    "accessories": "Accessories", "bags": "Bags", "bathroom": "Bathroom",
    "candles-lights": "Candles & lights", "cards-wrap": "Cards & wrap", "children": "Children",
    "christmas": "Christmas", "clocks": "Clocks", "crafts": "Crafts", "easter": "Easter",
    "furniture": "Furniture", "garden": "Garden", "home-decor": "Home decor",
    "jewellery": "Jewellery", "kitchen": "Kitchen", "other": "Other", "party": "Party",
    "signs": "Signs", "stationery": "Stationery", "storage": "Storage", "textiles": "Textiles",
    "toys-games": "Toys & games",
}


def item_line(item, name_category=False):
    """One JSONL line; the price is written with exactly two decimals ("2.50", not 2.5).
    `name_category`: the line carries its category's display name (the first of each)."""
    fields = {k: item[k] for k in ("id", "name", "category")}
    if name_category and item["category"] in CATEGORY_NAMES:
        fields["category_name"] = CATEGORY_NAMES[item["category"]]
    fields["tags"] = item["tags"]
    head = json.dumps(fields, ensure_ascii=False)
    return (head[:-1] + ', "price": ' + format(item["price"], ".2f") +
            ', "popularity": ' + str(item["popularity"]) + "}\n")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=str(DEFAULT_INPUT),
                        help="online_retail.csv.gz (default: %(default)s)")
    parser.add_argument("--out", default=str(DEFAULT_OUTPUT),
                        help="output JSONL file (default: %(default)s)")
    args = parser.parse_args(argv)

    catalog = build_catalog(read_transactions(args.input))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    named = set()
    lines = []
    for item in catalog:
        lines.append(item_line(item, item["category"] not in named))
        named.add(item["category"])
    text = "".join(lines)
    out.write_text(text, encoding="utf-8")

    per_category = collections.Counter(item["category"] for item in catalog)
    size = len(text.encode("utf-8"))
    print(f"wrote {out}: {len(catalog)} items, {size / 1024:.0f} KiB")
    for slug, count in sorted(per_category.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {slug:<16} {count:5d}  {100 * count / len(catalog):4.1f}%")
    if not MIN_ITEMS_WARN <= len(catalog) <= MAX_ITEMS_WARN:
        print(f"warning: expected {MIN_ITEMS_WARN}-{MAX_ITEMS_WARN} items", file=sys.stderr)
    if size > MAX_OUTPUT_BYTES:
        print(f"warning: output is larger than {MAX_OUTPUT_BYTES} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
