//! A fixed team of threads for the time loops of the fused layers. The pieces of a step are
//! either owned (the same thread at every step) or claimed (each thread takes its own share
//! first, then helps the others, [`Claims`]); a step ends at one barrier. The barrier
//! spins, because waking a sleeping pool worker at every step of a recurrent loop cost
//! tens of microseconds per step (measured with rayon on two cores).

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Spins (each a `pause`, ~40 ns) before a waiting thread starts yielding its core: long
/// enough for a step's imbalance, short enough not to starve an oversubscribed machine.
const SPINS_BEFORE_YIELD: u32 = 2_000;

/// A barrier for a fixed number of threads that waits by spinning, then by yielding.
pub struct Barrier {
    size: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Set when a thread of the team panicked: the others stop waiting and panic too
    /// (instead of waiting forever for it).
    poisoned: AtomicBool,
}

impl Barrier {
    fn new(size: usize) -> Self {
        Barrier { size, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0), poisoned: AtomicBool::new(false) }
    }

    /// Returns once every thread of the team has called `wait` as often as this one; what
    /// each wrote before is visible to all after.
    pub fn wait(&self) {
        if self.size == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.size {
            // reset before release: a thread that sees the new generation may arrive again at once
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.store(generation.wrapping_add(1), Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(!self.poisoned.load(Ordering::Relaxed), "another thread of the team panicked");
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// How many threads a loop over `chunks` fixed pieces of work gets: the size of rayon's
/// pool (what `--threads` sets), and never more than there are pieces.
pub fn size_for(chunks: usize) -> usize {
    rayon::current_num_threads().min(chunks).max(1)
}

/// Runs `work(rank, barrier)` on `threads` threads (the caller is rank 0) and returns
/// their results in rank order.
pub fn run<R: Send>(threads: usize, work: impl Fn(usize, &Barrier) -> R + Sync) -> Vec<R> {
    let barrier = Barrier::new(threads.max(1));
    /// Poisons the barrier if its thread unwinds.
    struct Guard<'a>(&'a Barrier);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.poisoned.store(true, Ordering::Relaxed);
            }
        }
    }
    let guarded = |rank: usize, barrier: &Barrier| {
        let _guard = Guard(barrier);
        work(rank, barrier)
    };
    let (guarded, barrier) = (&guarded, &barrier);
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|rank| scope.spawn(move || guarded(rank, barrier))).collect();
        let mut results = vec![guarded(0, barrier)];
        for handle in others {
            results.push(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        results
    })
}

/// Pieces of work handed out one at a time within each round (step) of a loop: a thread
/// takes the next piece when it has finished one, so a thread whose core runs slower (a
/// neighbour on the host: measured up to a third slower for seconds) does fewer pieces
/// instead of holding the others at the barrier. A piece must compute the same numbers
/// whichever thread takes it.
///
/// Each thread has a share of the pieces (the same at every round) and takes its own share
/// first, from the front; only then does it help the others, from the back of theirs. So
/// a piece's state, written at one round and read at the next, stays in the cache of the
/// core that runs it unless that core falls behind (with one counter for all, pieces
/// wandered between the cores at every step: on two cores a piece of the SHD-Adding
/// forward took 1.2× as long as on one).
pub struct Claims {
    /// Per thread, the unclaimed part of its share as `back << 32 | front` (one word, so
    /// that the owner and a helper agree on who takes the last piece), each on a cache line
    /// of its own (a thread claiming from its share does not evict the others'). Two sets:
    /// round `r` claims from set `r % 2`, and each owner refills its share of the other set
    /// for round `r + 1` when it starts round `r` (nobody uses that set then: its last round
    /// ended at a barrier, and its next one starts at one). So the memory is per thread,
    /// not per round (a sequence of 100,000 steps on 16 threads would have kept 100 MB).
    shares: [Vec<Share>; 2],
    rounds: usize,
    pieces: usize,
}

#[repr(align(64))]
struct Share(AtomicU64);

impl Claims {
    /// `rounds` rounds of `pieces` pieces for a team of `threads` ([`size_for`]).
    pub fn new(rounds: usize, pieces: usize, threads: usize) -> Self {
        let threads = threads.max(1);
        assert!(pieces < 1 << 31, "fewer than 2³¹ pieces a round");
        let set = || (0..threads).map(|owner| Share(AtomicU64::new(Self::full(pieces, threads, owner)))).collect();
        Claims { shares: [set(), set()], rounds, pieces }
    }

    /// The share `front..back` that `owner` starts a round with, as one word.
    fn full(pieces: usize, threads: usize, owner: usize) -> u64 {
        let (front, back) = (owner * pieces / threads, (owner + 1) * pieces / threads);
        (back as u64) << 32 | front as u64
    }

    /// The pieces thread `rank` takes in `round`; each piece of a round goes to one thread.
    /// Every thread of the team calls this once per round, one round after the other (up or
    /// down: the LSTM's backward counts its steps down), with a barrier between rounds
    /// (what a piece wrote reaches the others through that barrier).
    pub fn take(&self, round: usize, rank: usize) -> impl Iterator<Item = usize> + '_ {
        let threads = self.shares[0].len();
        assert!(round < self.rounds && rank < threads, "round {round} of {}, thread {rank} of {threads}", self.rounds);
        self.shares[(round + 1) % 2][rank].0.store(Self::full(self.pieces, threads, rank), Ordering::Relaxed);
        let set = &self.shares[round % 2];
        (0..threads).flat_map(move |k| {
            let owner = (rank + k) % threads;
            let share = &set[owner].0;
            let own = k == 0;
            std::iter::from_fn(move || {
                let mut word = share.load(Ordering::Relaxed);
                loop {
                    let (front, back) = (word & 0xffff_ffff, word >> 32);
                    if front >= back {
                        return None;
                    }
                    // the owner takes from the front, a helper from the back
                    let (next, piece) = if own { (word + 1, front) } else { (word - (1 << 32), back - 1) };
                    match share.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => return Some(piece as usize),
                        Err(now) => word = now,
                    }
                }
            })
        })
    }
}

/// The pieces `0..chunks` that thread `rank` of `threads` owns (every `threads`-th).
pub fn owned(rank: usize, threads: usize, chunks: usize) -> impl Iterator<Item = usize> {
    (rank..chunks).step_by(threads.max(1))
}

/// A buffer that the threads of a team read and write at places that the time loop keeps
/// apart: in one step a place is written by one thread and read by none, or only read;
/// a barrier separates the steps.
pub struct Shared<'a, F> {
    ptr: *mut F,
    len: usize,
    _borrow: PhantomData<&'a mut [F]>,
}

// SAFETY: the buffer is borrowed mutably for 'a, and the accessors' contracts keep the
// threads' accesses apart.
unsafe impl<F: Send> Send for Shared<'_, F> {}
unsafe impl<F: Send + Sync> Sync for Shared<'_, F> {}

impl<'a, F> Shared<'a, F> {
    pub fn new(buffer: &'a mut [F]) -> Self {
        Shared { ptr: buffer.as_mut_ptr(), len: buffer.len(), _borrow: PhantomData }
    }

    fn check(&self, range: &Range<usize>) {
        assert!(range.start <= range.end && range.end <= self.len, "shared buffer: {range:?} outside 0..{}", self.len);
    }

    /// # Safety
    /// No thread writes any of `range` while the returned slice lives.
    pub unsafe fn read(&self, range: Range<usize>) -> &[F] {
        self.check(&range);
        std::slice::from_raw_parts(self.ptr.add(range.start), range.len())
    }

    /// # Safety
    /// No other thread reads or writes any of `range` while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn write(&self, range: Range<usize>) -> &mut [F] {
        self.check(&range);
        std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barrier_orders_the_steps_of_every_thread() {
        // each thread adds its rank to its own slot at every step, then checks after the
        // barrier that every other thread has finished the same step
        let threads = 3;
        let steps = 200;
        let mut slots = vec![0usize; threads];
        let shared = Shared::new(&mut slots);
        let seen = run(threads, |rank, barrier| {
            let mut behind = 0;
            for step in 1..=steps {
                // SAFETY: slot `rank` is written by this thread only, read after the barrier
                unsafe { shared.write(rank..rank + 1)[0] = step };
                barrier.wait();
                for other in 0..threads {
                    // SAFETY: nobody writes between this barrier and the next
                    behind += (unsafe { shared.read(other..other + 1)[0] } != step) as usize;
                }
                barrier.wait();
            }
            behind
        });
        assert_eq!(seen, vec![0; threads]);
    }

    #[test]
    fn a_panicking_thread_ends_the_team_instead_of_hanging_it() {
        let outcome = std::panic::catch_unwind(|| {
            run(2, |rank, barrier| {
                if rank == 1 {
                    panic!("thread 1 fails");
                }
                barrier.wait(); // would wait forever for thread 1
            })
        });
        assert!(outcome.is_err());
    }

    #[test]
    fn owned_chunks_cover_each_chunk_once() {
        let mut count = vec![0; 10];
        for rank in 0..3 {
            owned(rank, 3, 10).for_each(|c| count[c] += 1);
        }
        assert_eq!(count, vec![1; 10]);
    }

    /// A thread takes its own share first, in order, then helps the others from the back
    /// of theirs; a share emptied by a helper leaves its owner nothing.
    #[test]
    fn a_thread_takes_its_own_share_first_then_helps_from_the_back() {
        // 10 pieces, 3 threads: shares 0..3, 3..6, 6..10
        let claims = Claims::new(2, 10, 3);
        assert_eq!(claims.take(0, 1).collect::<Vec<_>>(), vec![3, 4, 5, 9, 8, 7, 6, 2, 1, 0]);
        assert_eq!(claims.take(0, 0).count(), 0);
        assert_eq!(claims.take(0, 2).count(), 0);
        // the next round starts full; owner 2 takes two, then owner 0 helps it
        let mut own = claims.take(1, 2);
        assert_eq!((own.next(), own.next()), (Some(6), Some(7)));
        assert_eq!(claims.take(1, 0).collect::<Vec<_>>(), vec![0, 1, 2, 5, 4, 3, 9, 8]);
        assert_eq!(claims.take(1, 2).count(), 0);
    }

    /// Three threads claiming over 50 rounds: every piece of every round is taken by
    /// exactly one thread.
    #[test]
    fn claims_hand_each_piece_of_each_round_to_one_thread() {
        let (rounds, pieces) = (50, 7);
        let claims = Claims::new(rounds, pieces, 3);
        let taken: Vec<Vec<Vec<usize>>> = run(3, |rank, barrier| {
            (0..rounds)
                .map(|r| {
                    let mine: Vec<usize> = claims.take(r, rank).collect();
                    barrier.wait();
                    mine
                })
                .collect()
        });
        for r in 0..rounds {
            let mut all: Vec<usize> = taken.iter().flat_map(|per_thread| per_thread[r].iter().copied()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..pieces).collect::<Vec<_>>(), "round {r}");
        }
    }
}
