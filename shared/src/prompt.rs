//! Deterministic synthetic prompts: `n` words of plain English, different for every request.
//!
//! Each request's prompt starts differently, so a server's prefix cache cannot make later
//! requests look faster. Word counts approximate token counts; they are labelled as such.

/// Common short English words, most of them one token in the usual LLM vocabularies.
const WORDS: [&str; 64] = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "are", "with", "as", "at", "be", "this", "have", "from",
    "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said",
    "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out",
    "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has",
    "look", "two", "more",
];

/// The prompt of `words` words for request `seq` of the sweep point `point`.
pub fn synthetic_prompt(point: u32, seq: u32, words: u32) -> String {
    let mut state = (u64::from(point) << 32 | u64::from(seq)) ^ 0x7f4a_7c15_9e37_79b9;
    let mut out = String::with_capacity(words as usize * 5);
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[(splitmix64(&mut state) % WORDS.len() as u64) as usize]);
    }
    out
}

/// Counts the words of a text the way prompts are built: runs of non-whitespace.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_asked_length_and_is_stable() {
        let p = synthetic_prompt(3, 7, 100);
        assert_eq!(word_count(&p), 100);
        assert_eq!(p, synthetic_prompt(3, 7, 100));
        assert_eq!(synthetic_prompt(0, 0, 1).split(' ').count(), 1);
        assert_eq!(synthetic_prompt(0, 0, 0), "");
    }

    #[test]
    fn requests_start_differently() {
        let firsts: std::collections::HashSet<String> = (0..50).map(|seq| synthetic_prompt(0, seq, 6)).collect();
        assert_eq!(firsts.len(), 50);
    }
}
