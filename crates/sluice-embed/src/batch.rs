//! Batches packed by a token budget.
//!
//! Sequences are sorted by length and packed greedily until the batch would exceed the budget. A
//! padded forward pass (the GPU's) costs batch size × longest sequence, so similar lengths share a
//! batch and padding waste stays small; a packed one (the CPU's) costs the sum of the lengths.

/// Splits item indices into batches; `lengths[i]` is the token count of item `i`. With `padded`,
/// a batch costs its size × its longest item, else the sum of its lengths.
/// Every batch has at least one item; within a batch, items are in descending length.
pub fn plan_batches(lengths: &[usize], budget_tokens: usize, padded: bool) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut packed_tokens = 0;
    for index in order {
        // The first item of a batch is its longest, so it sets the padded length.
        let padded_length = current.first().map_or(lengths[index], |&first| lengths[first]).max(1);
        let cost = if padded { (current.len() + 1) * padded_length } else { packed_tokens + lengths[index] };
        if !current.is_empty() && cost > budget_tokens {
            batches.push(std::mem::take(&mut current));
            packed_tokens = 0;
        }
        current.push(index);
        packed_tokens += lengths[index];
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::plan_batches;

    #[test]
    fn packs_by_padded_size_and_keeps_every_item_once() {
        let lengths = [10, 250, 12, 240, 11, 9, 256];
        let batches = plan_batches(&lengths, 512, true);
        for batch in &batches {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() == 1 || batch.len() * longest <= 512, "{batch:?}");
        }
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..lengths.len()).collect::<Vec<_>>());
        // The long sequences travel together, the short ones together.
        assert_eq!(batches[0], vec![6, 1]);
    }

    #[test]
    fn an_item_over_budget_gets_a_batch_of_its_own() {
        assert_eq!(plan_batches(&[1000, 5], 100, true), vec![vec![0], vec![1]]);
        assert_eq!(plan_batches(&[1000, 5], 100, false), vec![vec![0], vec![1]]);
    }

    #[test]
    fn packed_batches_count_real_tokens_only() {
        // Packed, 250 + 40 costs 290; padded it would cost 2 × 250.
        assert_eq!(plan_batches(&[250, 10, 40], 295, false), vec![vec![0, 2], vec![1]]);
        assert_eq!(plan_batches(&[250, 10, 40], 295, true), vec![vec![0], vec![2, 1]]);
    }
}
