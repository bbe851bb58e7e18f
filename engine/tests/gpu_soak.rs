//! A classroom's session on the GPU path: questions in a row on one loaded model, one of
//! them stopped part-way, and the GPU objects after the last equal those after the first:
//! wgpu's own internal counters (buffers, their bytes, bind groups; the `counters` feature,
//! on for the tests only) and the engine's count of the buffers it holds (`Gpu::held`, the
//! figure the page reports, where wgpu has no counters; e2e/soak.test.mjs holds the page on
//! SwiftShader to it over eight questions). Three questions, the second stopped: each costs
//! ~22 s on lavapipe, and the counts are exact, so growth would show after each (measured
//! over 8: 282 buffers, 111,078,268 bytes and 1157 bind groups after every question, but
//! for one 32-byte buffer kept for one question after the stopped one).
#![cfg(not(target_arch = "wasm32"))]

use std::cell::Cell;

use futures::executor::block_on;
use m1_engine::backend::{run_controller, Sampling};
use m1_engine::gpu::{Gpu, Held};
use m1_engine::reason::{Controller, Question, ReasonConfig, StopReason};

mod common;
use common::{gpu_or_skip, load_on_gpu, test_model, SMOLLM};

const QUESTIONS: usize = 3;

/// (buffers, bytes of buffers, bind groups) alive on the device, as wgpu counts them, and
/// the buffers the engine holds.
fn held(gpu: &Gpu) -> ((isize, isize, isize), Held) {
    gpu.device.poll(wgpu::PollType::wait_indefinitely()).ok();
    let hal = gpu.device.get_internal_counters().hal;
    (
        (
            hal.buffers.read(),
            hal.buffer_memory.read(),
            hal.bind_groups.read(),
        ),
        gpu.held(),
    )
}

#[test]
fn questions_in_a_row_leave_the_gpu_objects_of_the_first() {
    let Some(path) = test_model(SMOLLM) else {
        return;
    };
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    let handle = gpu.clone();
    let mut loaded = load_on_gpu(&path, gpu);
    let mut after_first = None;
    for i in 0..QUESTIONS {
        // Short questions and budgets: lavapipe computes every step on the CPU.
        let question = Question {
            question: format!("Is {} an even number?", i + 2),
            context: None,
            options: vec![("A".into(), "yes".into()), ("B".into(), "no".into())],
        };
        let config = ReasonConfig {
            budget: 4,
            waits: 0,
            min_thinking: 0,
            max_answer_tokens: 3,
        };
        let mut ctl =
            Controller::reasoning_for(&loaded.tokenizer, &question, config).expect("prompt");
        // The second question is stopped after its second sampled token.
        let samples = Cell::new(0usize);
        let stop_after = if i == 1 { 2 } else { usize::MAX };
        let summary = block_on(run_controller(
            &mut loaded.backend,
            &mut ctl,
            &Sampling::GREEDY,
            || 0.0,
            |e| {
                if matches!(
                    e,
                    m1_engine::reason::Event::Think { .. }
                        | m1_engine::reason::Event::Answer { .. }
                ) {
                    samples.set(samples.get() + 1);
                }
            },
            || samples.get() >= stop_after,
        ))
        .expect("run");
        assert_eq!(
            summary.stop == StopReason::Cancelled,
            i == 1,
            "question {i}: {summary:?}"
        );
        let now = held(&handle);
        println!(
            "after question {}: wgpu {:?} (buffers, buffer bytes, bind groups), engine {:?}",
            i + 1,
            now.0,
            now.1
        );
        after_first.get_or_insert(now);
    }
    let first = after_first.unwrap();
    let (wgpu_first, engine_first) = first;
    assert!(
        wgpu_first.0 > 0 && wgpu_first.1 > 0,
        "wgpu's counters read zero: the `counters` feature is off"
    );
    // Every buffer the engine holds is one wgpu counts; wgpu's own (staging for queue
    // writes) come on top.
    assert!(
        engine_first.buffers > 0
            && engine_first.buffers as isize <= wgpu_first.0
            && engine_first.bytes as isize <= wgpu_first.1,
        "the engine counts {engine_first:?}, wgpu {wgpu_first:?}"
    );
    assert_eq!(
        held(&handle),
        first,
        "the GPU objects grew over {QUESTIONS} questions"
    );
}

/// A model let go for another must give its memory back at once. On the web a dropped wgpu
/// buffer waits for the garbage collector, so the engine destroys a buffer when its last
/// handle drops: shown here by a bind group that still names the buffer, which would keep
/// it alive (natively as in the page) were it only dropped.
#[test]
fn a_buffer_is_destroyed_when_the_engine_lets_it_go() {
    let Some(gpu) = gpu_or_skip() else {
        return;
    };
    const BYTES: u64 = 1 << 20;
    let before = held(&gpu);
    let buffer = gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some("let go"),
        size: BYTES,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let layout = gpu
        .device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: None,
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
    let names_it = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buffer.as_entire_binding(),
        }],
    });
    let with = held(&gpu);
    assert_eq!(with.0 .0, before.0 .0 + 1, "{before:?} -> {with:?}");
    assert!(
        with.0 .1 >= before.0 .1 + BYTES as isize,
        "{before:?} -> {with:?}"
    );
    drop(buffer);
    let after = held(&gpu);
    assert_eq!(
        (after.0 .0, after.0 .1, after.1),
        (before.0 .0, before.0 .1, before.1),
        "the buffer outlived the engine's last handle (bind group alive: {names_it:?})"
    );
}
