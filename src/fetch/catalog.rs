//! The published dataset files `elmlab data fetch` knows: where they are, how large, and
//! the checksums published for them (with where each was published).

/// A digest a file must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Md5(&'static str),
    Sha256(&'static str),
}

#[derive(Clone, Debug)]
pub struct PublishedFile {
    pub name: &'static str,
    /// The address, relative to the mirror.
    pub path: &'static str,
    pub size: Option<u64>,
    pub digest: Digest,
    /// Where the checksum was published.
    pub source: &'static str,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: &'static str,
    pub mirrors: &'static [&'static str],
    pub default_dir: &'static str,
    pub files: &'static [PublishedFile],
    /// What to tell the user once the files are there.
    pub next: &'static str,
}

const NORSE: &str = "norse/norse, norse/dataset/spiking_heidelberg.py (the MD5s of the compneuro.net files, which the Zenke lab's datasets page now serves)";

pub const SHD: Dataset = Dataset {
    name: "shd",
    mirrors: &["https://zenkelab.org/datasets/", "https://compneuro.net/datasets/"],
    default_dir: "data/shd",
    files: &[
        PublishedFile { name: "shd_train.h5.gz", path: "shd_train.h5.gz", size: None, digest: Digest::Md5("d47c9825dee33347913e8ce0f2be08b0"), source: NORSE },
        PublishedFile { name: "shd_test.h5.gz", path: "shd_test.h5.gz", size: None, digest: Digest::Md5("3062a80ec0c5719404d5b02e166543b1"), source: NORSE },
    ],
    next: "the SHD and SHD-Adding tasks read these (task.data_dir)",
};

pub const ENWIK8: Dataset = Dataset {
    name: "enwik8",
    mirrors: &["http://mattmahoney.net/dc/"],
    default_dir: "data",
    files: &[PublishedFile {
        name: "enwik8.zip",
        path: "enwik8.zip",
        size: Some(36_445_475),
        digest: Digest::Sha256("547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc"),
        source: "the size from http://mattmahoney.net/dc/textdata.html; the SHA-256 from huggingface/datasets, datasets/enwik8/dataset_infos.json",
    }],
    next: "configs/enwik8/*.ron read data/enwik8.zip as it is; elsewhere set task.path=DIR/enwik8.zip",
};

pub const DATASETS: [&Dataset; 2] = [&SHD, &ENWIK8];

pub fn find(name: &str) -> Option<&'static Dataset> {
    DATASETS.into_iter().find(|d| d.name == name)
}
