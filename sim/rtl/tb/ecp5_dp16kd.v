// A behavioural model of the ECP5 DP16KD block RAM, for simulating BlockRam's ECP5 form (Yosys ships the
// primitive as a black box only). It models what BlockRam uses, as Lattice TN1264 (ECP5 memory usage guide)
// describes it: port A writes, port B reads, both ports the same width (36: the pseudo dual-port mode, a word
// written through DIA/DIB and read from DOA/DOB); a write takes CEA & WEA, and at x18 / x36 the low address
// bits ADA[1:0] / ADA[3:0] are the 9-bit lanes' byte enables; a read takes CEB into the output latch, and with
// REGMODE = "OUTREG" OCE loads the output register from it; RST clears both (RESETMODE "SYNC"). Chip selects,
// write modes, a port B write and reads of a word written in the same cycle are not modelled (BlockRam ties the
// selects to 0, never writes through B and is not read where it is written).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module DP16KD #(
    parameter integer DATA_WIDTH_A = 18,
    parameter integer DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG",
    parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC",
    parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000",
    parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL",
    parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED"
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2,
    input DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3,
    output DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2,
    input DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3,
    output DOB2, DOB1, DOB0
);
    localparam integer W = DATA_WIDTH_A;
    localparam integer LOW = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
    localparam integer LANES = W == 36 ? 4 : W == 18 ? 2 : 0;

    wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4,
                      DIB3, DIB2, DIB1, DIB0,
                      DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4,
                      DIA3, DIA2, DIA1, DIA0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire [13:0] wa = ada >> LOW;
    wire [13:0] ra = adb >> LOW;

    reg [35:0] words [0:16383];
    reg [35:0] latch;
    reg [35:0] outreg;
    integer lane;

    always @(posedge CLKA) begin
        if (CEA && WEA) begin
            if (LANES == 0)
                words[wa] <= di & ((36'd1 << W) - 36'd1);
            else
                for (lane = 0; lane < LANES; lane = lane + 1)
                    if (ada[lane])
                        words[wa][9 * lane +: 9] <= di[9 * lane +: 9];
        end
    end

    always @(posedge CLKB) begin
        if (RSTB) begin
            latch <= 36'd0;
            outreg <= 36'd0;
        end else begin
            if (CEB)
                latch <= words[ra];
            if (OCEB)
                outreg <= latch;
        end
    end

    wire [35:0] lo = REGMODE_A == "OUTREG" ? outreg : latch;    // at x36 DOA carries the word's low half
    wire [35:0] hi = REGMODE_B == "OUTREG" ? outreg : latch;
    wire [35:0] dout = W == 36 ? {hi[35:18], lo[17:0]} : {18'd0, hi[17:0]};
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2,
            DOA1, DOA0} = dout[17:0];
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2,
            DOB1, DOB0} = W == 36 ? dout[35:18] : dout[17:0];
endmodule
