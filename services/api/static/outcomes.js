// Every outcome code projections/outcomes.py gives an item, in words, an icon and a tone (colour is
// never the only carrier). tests/unit/test_api_dashboard.py compares this table's keys with the codes
// the Python module can produce, so the two cannot drift. A frequency item's outcome is its winning
// option's name instead of a code.
export const OUTCOMES = {
  passed: ["✔", "Passed", "good"],
  failed: ["✘", "Failed", "bad"],
  elected: ["✔", "Elected", "good"],
  not_elected: ["✘", "Not elected", "bad"],
  tie: ["⚖", "Tie", "warn"],
  no_quorum: ["⏸", "No quorum", "warn"],
  no_votes: ["∅", "No votes yet", "warn"],
};

// [icon, words, tone] for an item's outcome; ``options`` are the item's options (a frequency item's
// winner is one of them), ``label`` turns an option into words.
export function outcomeWords(outcome, options, label) {
  if (Object.prototype.hasOwnProperty.call(OUTCOMES, outcome)) return OUTCOMES[outcome];
  if (Array.isArray(options) && options.includes(outcome)) return ["★", "Most votes: " + label(outcome), "neutral"];
  return ["?", "Outcome: " + String(outcome), "warn"]; // a code this page does not know: shown as given
}
