//! Tradeoff models: closed-form predictions of a task metric from the split of a
//! parameter budget into N neurons of complexity k_e with k_c connections each.

mod info_saturation;
