// The kernels compiled as host C++ for the tests (see portable.h): a launch is a call
// with the grid's shape set first.
#include "elm.cu"
#include "lstm.cu"

extern "C" unsigned long long elm_args_size() { return sizeof(ElmArgs); }

extern "C" void elm_forward_host(const ElmArgs *p, unsigned grid, unsigned block) {
    gridDim.x = grid;
    blockDim.x = block;
    elm_forward(*p);
}

extern "C" void elm_backward_host(const ElmArgs *p, unsigned grid, unsigned block) {
    gridDim.x = grid;
    blockDim.x = block;
    elm_backward(*p);
}

extern "C" unsigned long long lstm_args_size() { return sizeof(LstmArgs); }

extern "C" void lstm_forward_host(const LstmArgs *p, unsigned grid, unsigned block) {
    gridDim.x = grid;
    blockDim.x = block;
    lstm_forward(*p);
}

extern "C" void lstm_backward_host(const LstmArgs *p, unsigned grid, unsigned block) {
    gridDim.x = grid;
    blockDim.x = block;
    lstm_backward(*p);
}
