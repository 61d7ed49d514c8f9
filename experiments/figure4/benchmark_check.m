% The COFW-68 benchmark's own evaluation of its result files, run by GNU Octave in a checkout of
% https://github.com/golnazghiasi/cofw68-benchmark (f9af958), to check odn_lightning.score against it:
%   cd cofw68-benchmark && octave --no-gui --quiet --eval "pkg load statistics; source('/path/to/benchmark_check.m')"
% It calls the benchmark's ReadDetectionResults.m and LandmarkLocalizationEval.m unchanged, with the
% ground truth read as ReadCofw68Data.m reads it (Points, Occ; no images needed), and prints each
% method's numbers as Main.m computes them (l. 81-85), for the eye centres (Main.m l. 8-9) and for the
% outer eye corners (37 and 46, 1-based: a one-point "eye" whose centre is the corner).
n = 507;
for i = 1 : n
    load(sprintf('COFW68_Data/test_annotations/%d_points.mat', i), 'Points', 'Occ');
    test(i).id = num2str(i);
    test(i).pts = Points;
    test(i).occ = Occ;
end
files = {'Results/HPM_HelenLfpw_COFW68test.txt', 'Results/SAPM_COFW68.txt', 'Results/CFSS_CFOW68.txt', ...
         'Results/TCDCN_CFOW68.txt', 'Results/RCPR-occ_300w.txt'};
normalisers = {'inter_pupil', 'inter_ocular'};
left = {37 : 42, 37};
right = {43 : 48, 46};
subsets = {'all', 'visible'};
printf('method,normaliser,subset,nme,success_10,below_08,precision,recall,nan\n');
for f = 1 : numel(files)
    boxes = ReadDetectionResults(files{f});
    for k = 1 : 2
        for vis = 0 : 1
            [errors, precision, recall] = LandmarkLocalizationEval(boxes, 'pts68', 'occ68', test, ...
                left{k}, right{k}, vis);
            ave = mean(errors(~isnan(errors)));  % Main.m's nanmean (not in Octave's statistics 1.5.3)
            success = sum(errors <= 0.1) / length(errors) * 100;
            below = sum(errors <= 0.08) / length(errors) * 100;
            printf('%s,%s,%s,%.6f,%.6f,%.6f,%.6f,%.6f,%d\n', files{f}, normalisers{k}, subsets{vis + 1}, ...
                ave * 100, success, below, precision, recall, sum(isnan(errors)));
        end
    end
end
