;; Adds a stretched watermark residual to one row of 8-bit samples, 16 samples per step with 128-bit SIMD.
;; The hot loop of watermark.embed at full resolution: in plain JavaScript it cost about as much as the JPEG
;; decode of the same image, and the issue bounds embedding at 2x decode + encode (models/watermark/CARD.md).
;;
;; Built into watermark-residual.wasm by `npm run build:wasm` (wabt); test/runner/watermark-residual.test.ts
;; checks the committed binary is this source's build and that the result matches the scalar JavaScript path.
;;
;; add_row(w0, w1, src, dst, n, wy) -> sum of squared changes (f64)
;;   w0, w1: byte offsets of two f32 rows (the residual rows above and below this output row, already
;;           stretched horizontally, scaled to sample units and offset by +0.5 so truncation rounds)
;;   src, dst: byte offsets of n input and output samples (u8)
;;   wy: vertical interpolation weight of w1
;; Every output sample is clamp(trunc(src + w0 + (w1 - w0) * wy), 0, 255), the same rounding as the JavaScript
;; path; the clamp comes from the saturating narrowing conversions. The caller keeps n <= 65536 so the four
;; i32 lanes of squared changes cannot overflow (2 x 255^2 per lane per dot, 4096 steps).
(module
  (memory (export "memory") 1)
  (func (export "add_row")
    (param $w0 i32) (param $w1 i32) (param $src i32) (param $dst i32) (param $n i32) (param $wy f32)
    (result f64)
    (local $i i32) (local $n16 i32) (local $wyv v128) (local $acc v128)
    (local $s8 v128) (local $slo v128) (local $shi v128) (local $o8 v128)
    (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)
    (local $d v128) (local $a v128) (local $sq f64) (local $t f32) (local $v i32)
    (local.set $wyv (f32x4.splat (local.get $wy)))
    (local.set $n16 (i32.and (local.get $n) (i32.const -16)))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $i) (local.get $n16)))
        (local.set $s8 (v128.load (i32.add (local.get $src) (local.get $i))))
        (local.set $slo (i16x8.extend_low_i8x16_u (local.get $s8)))
        (local.set $shi (i16x8.extend_high_i8x16_u (local.get $s8)))
        ;; q_k: samples 4k..4k+3 of this step, as src + lerp(w0, w1, wy), truncated toward zero (saturating). Written
        ;; out four times rather than called: V8 does not inline WebAssembly calls, and the call cost about a third of the
        ;; kernel's time.
        (local.set $q0 (i32x4.trunc_sat_f32x4_s
          (f32x4.add (f32x4.convert_i32x4_u (i32x4.extend_low_i16x8_u (local.get $slo)))
            (f32x4.add (local.tee $a (v128.load (i32.add (local.get $w0) (i32.shl (local.get $i) (i32.const 2)))))
              (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $w1) (i32.shl (local.get $i) (i32.const 2)))) (local.get $a)) (local.get $wyv))))))
        (local.set $q1 (i32x4.trunc_sat_f32x4_s
          (f32x4.add (f32x4.convert_i32x4_u (i32x4.extend_high_i16x8_u (local.get $slo)))
            (f32x4.add (local.tee $a (v128.load (i32.add (local.get $w0) (i32.shl (i32.add (local.get $i) (i32.const 4)) (i32.const 2)))))
              (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $w1) (i32.shl (i32.add (local.get $i) (i32.const 4)) (i32.const 2)))) (local.get $a)) (local.get $wyv))))))
        (local.set $q2 (i32x4.trunc_sat_f32x4_s
          (f32x4.add (f32x4.convert_i32x4_u (i32x4.extend_low_i16x8_u (local.get $shi)))
            (f32x4.add (local.tee $a (v128.load (i32.add (local.get $w0) (i32.shl (i32.add (local.get $i) (i32.const 8)) (i32.const 2)))))
              (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $w1) (i32.shl (i32.add (local.get $i) (i32.const 8)) (i32.const 2)))) (local.get $a)) (local.get $wyv))))))
        (local.set $q3 (i32x4.trunc_sat_f32x4_s
          (f32x4.add (f32x4.convert_i32x4_u (i32x4.extend_high_i16x8_u (local.get $shi)))
            (f32x4.add (local.tee $a (v128.load (i32.add (local.get $w0) (i32.shl (i32.add (local.get $i) (i32.const 12)) (i32.const 2)))))
              (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $w1) (i32.shl (i32.add (local.get $i) (i32.const 12)) (i32.const 2)))) (local.get $a)) (local.get $wyv))))))
        (local.set $o8 (i8x16.narrow_i16x8_u
          (i16x8.narrow_i32x4_s (local.get $q0) (local.get $q1))
          (i16x8.narrow_i32x4_s (local.get $q2) (local.get $q3))))
        (v128.store (i32.add (local.get $dst) (local.get $i)) (local.get $o8))
        (local.set $d (i16x8.sub (i16x8.extend_low_i8x16_u (local.get $o8)) (local.get $slo)))
        (local.set $acc (i32x4.add (local.get $acc) (i32x4.dot_i16x8_s (local.get $d) (local.get $d))))
        (local.set $d (i16x8.sub (i16x8.extend_high_i8x16_u (local.get $o8)) (local.get $shi)))
        (local.set $acc (i32x4.add (local.get $acc) (i32x4.dot_i16x8_s (local.get $d) (local.get $d))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $step)))
    (local.set $sq (f64.add
      (f64.add (f64.convert_i32_u (i32x4.extract_lane 0 (local.get $acc))) (f64.convert_i32_u (i32x4.extract_lane 1 (local.get $acc))))
      (f64.add (f64.convert_i32_u (i32x4.extract_lane 2 (local.get $acc))) (f64.convert_i32_u (i32x4.extract_lane 3 (local.get $acc))))))
    ;; The last n mod 16 samples, one at a time, with the same arithmetic.
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $t (f32.load (i32.add (local.get $w0) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $t (f32.add
          (f32.convert_i32_u (i32.load8_u (i32.add (local.get $src) (local.get $i))))
          (f32.add (local.get $t)
            (f32.mul (f32.sub (f32.load (i32.add (local.get $w1) (i32.shl (local.get $i) (i32.const 2)))) (local.get $t))
              (local.get $wy)))))
        (local.set $v (i32.trunc_sat_f32_s (local.get $t)))
        (local.set $v (select (i32.const 0) (local.get $v) (i32.lt_s (local.get $v) (i32.const 0))))
        (local.set $v (select (i32.const 255) (local.get $v) (i32.gt_s (local.get $v) (i32.const 255))))
        (i32.store8 (i32.add (local.get $dst) (local.get $i)) (local.get $v))
        (local.set $v (i32.sub (local.get $v) (i32.load8_u (i32.add (local.get $src) (local.get $i)))))
        (local.set $sq (f64.add (local.get $sq) (f64.convert_i32_s (i32.mul (local.get $v) (local.get $v)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))
    (local.get $sq)))
