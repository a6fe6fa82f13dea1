//! Checks of a task.

use crate::task::{collect_eval, validate_batch, Split, Task};

/// Training batches at several steps and sizes are valid (at least one step and one
/// sequence, inputs, targets and resets of the declared sizes), as long as the task's
/// `sequence_length`, and the same when asked again; different steps give different
/// batches; each evaluation split is a non-empty list of valid batches, the same every
/// time it is asked for.
pub fn check_task(task: &dyn Task) {
    for step in [0u64, 1, 7] {
        for batch in [1usize, 3] {
            let b = task.train_batch(step, batch).unwrap_or_else(|e| panic!("train batch {step} of {batch}: {e}"));
            if let Err(e) = validate_batch(task, &b) {
                panic!("train batch {step} of {batch}: {e}");
            }
            assert_eq!(b.batch, batch, "train batch {step} has {} sequences, asked for {batch}", b.batch);
            assert_eq!(b.steps, task.sequence_length(), "train batch {step} has {} steps; the task's sequence_length is {}", b.steps, task.sequence_length());
            assert!(b == task.train_batch(step, batch).unwrap(), "train batch {step} of {batch} differs when asked again: batches must depend only on (seed, step)");
        }
    }
    assert!(task.train_batch(0, 3).unwrap() != task.train_batch(1, 3).unwrap(), "train batches 0 and 1 are the same");
    for split in [Split::Valid, Split::Test] {
        let batches = collect_eval(task, split, 4).unwrap_or_else(|e| panic!("{split} batches: {e}"));
        assert!(!batches.is_empty(), "the {split} split has no batches");
        for (i, b) in batches.iter().enumerate() {
            if let Err(e) = validate_batch(task, b) {
                panic!("{split} batch {i}: {e}");
            }
        }
        assert!(batches == collect_eval(task, split, 4).unwrap(), "the {split} batches differ when asked again");
    }
}
