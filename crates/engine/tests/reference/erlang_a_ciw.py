# Erlang A reference values (crates/engine/src/staffing.rs): ciw's simulation of M/M/N+M.
# pip install ciw==3.2.7 && python3 erlang_a_ciw.py
import ciw, statistics
def run(calls_h, aht, n, patience, t, seeds=range(6), horizon=400000.0, warm=20000.0):
    ab=[];sl=[];w=[]
    for seed in seeds:
        ciw.seed(seed)
        N=ciw.create_network(arrival_distributions=[ciw.dists.Exponential(calls_h/3600)],
            service_distributions=[ciw.dists.Exponential(1/aht)], number_of_servers=[n],
            reneging_time_distributions=[ciw.dists.Exponential(1/patience)])
        Q=ciw.Simulation(N); Q.simulate_until_max_time(horizon)
        recs=[r for r in Q.get_all_records() if r.arrival_date>warm and r.arrival_date<horizon-5000]
        tot=len(recs)
        abandoned=sum(1 for r in recs if r.record_type=='renege')
        within=sum(1 for r in recs if r.record_type=='service' and r.waiting_time<=t)
        ab.append(abandoned/tot); sl.append(within/tot); w.append(sum(r.waiting_time for r in recs)/tot)
    f=lambda x:(statistics.mean(x), statistics.stdev(x)/len(x)**0.5)
    print(calls_h,aht,n,patience,t,'abandon',f(ab),'sl',f(sl),'wait',f(w),flush=True)
run(200,180,12,120,20)
run(600,180,25,120,20)
run(360,300,28,180,30)
